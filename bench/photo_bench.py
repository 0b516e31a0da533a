"""Photo pipeline benchmark: per-photo latency of ``process`` on a 12 MP phone-like JPEG.

    python -m bench.photo_bench            # 30 runs
    python -m bench.photo_bench -n 100

Builds the photo (4000x3000, quality 90, EXIF with camera, capture time, GPS and Orientation=6
as a phone held upright writes it) and writes it to a file, which the pipeline reads as the upload
endpoint does (the spooled upload, never a copy in memory). Runs it on one core and prints p50/p95
latency, CPU per photo and photos per second; then on every core at once (one thread per decode
slot: Pillow releases the GIL while it decodes, resizes and encodes) for the throughput per core.
Prints figures; never passes or fails on them. The target is at most 60 ms per photo per core.
"""

import argparse
import io
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw
from PIL.TiffImagePlugin import IFDRational

from backend.evidence.photos import DECODE_SLOTS, DEFAULT_SIZES, process
from bench.report import Figure


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phone_photo(width: int = 4000, height: int = 3000, quality: int = 90) -> bytes:
    """A JPEG that compresses like a phone photo (about 3 MB): smooth light, hard edges, sensor noise."""
    small = Image.linear_gradient("L").resize((width // 8, height // 8))
    base = Image.merge(
        "RGB", (small, small.rotate(90).resize(small.size), small.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    )
    draw = ImageDraw.Draw(base)
    for i in range(40):  # pipes, valves, walls: hard edges in several colours
        x, y = (i * 37) % base.width, (i * 53) % base.height
        draw.rectangle((x, y, x + 60, y + 25), fill=((i * 60) % 256, (i * 90) % 256, (i * 30) % 256))
    img = base.resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width // 2, height // 2), 40).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    grain = Image.merge(
        "RGB",
        (
            grain,
            grain.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            grain.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        ),
    )
    img = Image.blend(img, grain, 0.3)

    exif = Image.Exif()
    exif[0x010F] = "Acme"
    exif[0x0110] = "Acme Phone 15"
    exif[0x0112] = 6
    exif[0x0132] = "2026:12:07 09:41:07"
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0x9003] = "2026:12:07 09:41:07"
    exif_ifd[0x9011] = "+08:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(39, 1), IFDRational(54, 1), IFDRational(2718, 100))
    gps[3], gps[4] = "E", (IFDRational(116, 1), IFDRational(23, 1), IFDRational(4455, 100))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args(argv)

    data = phone_photo()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.part"
        path.write_bytes(data)
        return run(args.runs, data, path)


def figures(*, quick: bool = False) -> list[Figure]:
    """For ``python -m bench``: 30 runs, or 4 when quick."""
    return main(["-n", "4" if quick else "30"])


def run(runs: int, data: bytes, path: Path) -> list[Figure]:
    print(
        f"input: 4000x3000 JPEG q90, {len(data) / 1e6:.2f} MB, EXIF Orientation=6 with GPS, read from a file"
    )
    claims, copies = process(path)  # warm-up: plugin imports, allocator
    print(
        f"claims: {claims.width}x{claims.height} taken_at={claims.taken_at} gps=({claims.gps_lat}, {claims.gps_lon})"
    )
    print(
        "copies: " + ", ".join(f"{c.name} {c.width}x{c.height} {len(c.content) / 1e3:.0f} kB" for c in copies)
    )

    # Floor: what Pillow alone needs to read the JPEG at the draft scale the pipeline uses.
    floor = []
    for _ in range(max(5, runs // 3)):
        started = time.perf_counter()
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (DEFAULT_SIZES["display"], DEFAULT_SIZES["display"] * 3 // 4))
            img.load()
        floor.append((time.perf_counter() - started) * 1000)
    # Calibration: a pure-Python loop, to compare this core with another machine's.
    started = time.perf_counter()
    sum(i * i for i in range(10**7))
    calibration = time.perf_counter() - started

    timings = []
    cpu_started = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        process(path)
        timings.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / runs

    # Every core at once, as the upload endpoint's pipeline threads run.
    per_thread = max(4, runs // 2)
    barrier = threading.Barrier(DECODE_SLOTS)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            process(path)

    threads = [threading.Thread(target=worker) for _ in range(DECODE_SLOTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parallel = time.perf_counter() - started
    parallel_rate = DECODE_SLOTS * per_thread / parallel

    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024 * 1024 if sys.platform == "darwin" else 1024
    )
    print(
        f"runs: {runs} on one core; {DECODE_SLOTS} x {per_thread} on {DECODE_SLOTS} cores (os: {os.cpu_count()})"
    )
    print(
        f"latency ms: p50 {percentile(timings, 0.5):.1f}  p95 {percentile(timings, 0.95):.1f}  "
        f"mean {statistics.fmean(timings):.1f}  min {min(timings):.1f}"
    )
    print(f"cpu ms/photo: {cpu_ms:.1f}")
    print(f"throughput: {1000 / statistics.fmean(timings):.1f} photos/s on one core")
    print(
        f"throughput: {parallel_rate:.1f} photos/s on {DECODE_SLOTS} cores "
        f"({1000 * DECODE_SLOTS / parallel_rate:.1f} ms per photo per core)"
    )
    print(
        f"decode floor (JPEG at the pipeline's draft scale, Pillow only): p50 {percentile(floor, 0.5):.1f} ms"
    )
    print(f"peak RSS: {peak:.0f} MiB")
    print(f"calibration: sum(i*i for i in range(10**7)) took {calibration:.2f} s on this core")
    decode_floor = percentile(floor, 0.5)
    return [
        Figure(
            "photo",
            "process one 12 MP photo, p50",
            percentile(timings, 0.5),
            "ms",
            decode_floor,
            "Pillow decode",
        ),
        Figure(
            "photo",
            f"per photo per core, {DECODE_SLOTS} cores",
            1000 * DECODE_SLOTS / parallel_rate,
            "ms",
            decode_floor,
            "Pillow decode",
            "<= 60 ms",
        ),
        Figure("photo", "peak RSS", peak, "MiB"),
    ]


if __name__ == "__main__":
    main()
