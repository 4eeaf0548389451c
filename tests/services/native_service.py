"""A small real HTTP service that calls a C library through ctypes: /leak keeps the record the
library allocates for each request, /ok releases it. Run: python native_service.py PORT"""

from serving import QuietHandler, serve

from soak.workloads.native._build import load_libretain

_lib = load_libretain()


class Handler(QuietHandler):
    def do_GET(self) -> None:
        record = _lib.make_record(32768, 1)  # LEAK
        if self.path != "/leak":
            _lib.release_record(record)
        self.answer(b"ok\n")


if __name__ == "__main__":
    serve(Handler)
