"""ROS 2 side of TDMI-ROS: the pose node, message conversions, companions and console commands.

Importing this package imports nothing from ROS; each module imports rclpy/messages itself.
"""
