"""ROS 2 side of TDMI-ROS: the pose node, message conversions, companions and console commands.

Importing this package imports nothing from ROS; each module imports rclpy/messages itself.
"""
import os as _os

# Bound OpenCV's image decoder for the whole process: OpenCV reads this once, when cv2 is loaded,
# and every entry point imports this package first. The nodes check sizes from the headers before
# decoding (tdmi_ros.image_headers); this is the second line. A value set by the user wins.
DECODER_MAX_PIXELS = 8192 * 8192
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DECODER_MAX_PIXELS))
