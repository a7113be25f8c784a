"""Reference JPEG decode with PIL (libjpeg-turbo): writes each file's RGB pixels to stdout.

Usage: python jpeg_decode_pil.py FILE...
For each file in order: width and height as two little-endian u32, then width*height*3
bytes of interleaved RGB. EXIF orientation is not applied (the raw sensor layout).
"""

import struct
import sys

from PIL import Image


def main() -> None:
    out = sys.stdout.buffer
    for path in sys.argv[1:]:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            out.write(struct.pack("<II", rgb.width, rgb.height))
            out.write(rgb.tobytes())
    out.flush()


if __name__ == "__main__":
    main()
