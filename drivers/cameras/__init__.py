"""Frame-camera backends: OpenCV ``VideoCapture`` (``opencv``), a folder of images (``folder``), GenICam via harvesters (``genicam``)."""
