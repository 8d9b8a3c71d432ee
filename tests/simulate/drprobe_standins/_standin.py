"""Shared code of the stand-ins for Dr Probe's celslc, msa and wavimg (tests/simulate/test_drprobe_backend.py).

They check orchestration, not physics. They read their command lines and parameter files as Dr Probe
documents them (the celslc, msa and wavimg howto files of github.com/ju-bar/drprobe_clt) and write
files in its formats: EMS slice files (8192-byte header, then complex64 data), complex64 wave files and
float32 image files, all little-endian with x fastest. Their content is made up and deterministic:

- celslc: slice phase φ(x, y) = 0.5·Z/79 per atom on its pixel (÷ (1 + 100·B_iso[nm²]) with -dwf);
- msa: ψ = exp(i·Σφ) over the slice sequence (no propagation), saved at the readout planes;
- wavimg: I = |ψ|²·(1 + C1/1000 nm) − arg(ψ)/10, so a vacuum image is 1 + C1[nm]/1000.

Standard library only, so any python3 runs them. Environment:

- DRPROBE_STANDIN_FAIL = "<program>[@<n>][:<mode>]": <program> fails (only on its n-th call, counted in
  the folder DRPROBE_STANDIN_STATE) in <mode> "exit" (default: a message on stderr, exit code 3),
  "stop" (Dr Probe's own way: "Critical error: ..." on stdout, exit code 0, no output) or "silent"
  (exit code 0, no output, no message).
- DRPROBE_STANDIN_SLEEP = "<program>:<seconds>": <program> sleeps first.

Every call appends its arguments as one JSON line to drprobe_calls.jsonl in its working folder.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import time

SYMBOLS = ("X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se "
           "Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho "
           "Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U").split()
HEADER_BYTES = 0x2000
_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|[^\s,'\"]+")


def critical(message: str) -> None:
    """End as Dr Probe does after a critical error: the message on stdout, then exit code 0."""
    print(f"Critical error: {message}")
    print("")
    print("Errors:  1, Warnings:  0")
    sys.exit(0)


def start(program: str, version: str, argv: list[str], usage: str) -> None:
    """Log the call, apply DRPROBE_STANDIN_SLEEP / _FAIL, print the banner, and stop on an empty command line."""
    with open("drprobe_calls.jsonl", "a") as log:
        log.write(json.dumps({"program": program, "argv": argv}) + "\n")
    sleep = os.environ.get("DRPROBE_STANDIN_SLEEP", "")
    if sleep.split(":")[0] == program:
        time.sleep(float(sleep.split(":")[1]))
    _maybe_fail(program)
    print(" +---------------------------------------------------+")
    print(f" | Program: [{program}] Dr Probe stand-in               |")
    print(f" | Version: {version} 64-bit  -  tests only  -         |")
    print(" +---------------------------------------------------+")
    if not argv:
        print(usage)
        critical("Missing required program arguments.")


def _maybe_fail(program: str) -> None:
    spec = re.fullmatch(r"(\w+)(?:@(\d+))?(?::(\w+))?", os.environ.get("DRPROBE_STANDIN_FAIL", ""))
    if not spec or spec.group(1) != program:
        return
    if spec.group(2):
        counter = os.path.join(os.environ["DRPROBE_STANDIN_STATE"], f"{program}.count")
        calls = (int(open(counter).read()) if os.path.exists(counter) else 0) + 1
        with open(counter, "w") as f:
            f.write(str(calls))
        if calls != int(spec.group(2)):
            return
    mode = spec.group(3) or "exit"
    if mode == "stop":
        critical(f"{program} stand-in: induced failure.")
    if mode == "silent":
        sys.exit(0)
    print(f"{program} stand-in: induced failure", file=sys.stderr)
    sys.exit(3)


def options(argv: list[str], with_value: set[str], switches: set[str]) -> dict:
    """Command-line options: ``{name: value}`` for ``with_value``, ``{name: True}`` for ``switches``."""
    found, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg in switches:
            found[arg] = True
        elif arg in with_value and i + 1 < len(argv):
            found[arg] = argv[i + 1]
            i += 1
        else:
            critical(f"Unknown or incomplete command-line option [{arg}].")
        i += 1
    return found


def values(line: str, kinds: str) -> list:
    """Fortran list-directed read of one line: the first len(kinds) values, "i" int, "f" float, "s" string."""
    tokens = _TOKEN.findall(line)
    if len(tokens) < len(kinds):
        critical(f"Failed to read {len(kinds)} values from [{line.strip()}].")
    out = []
    for kind, token in zip(kinds, tokens):
        try:
            out.append(token.strip("'\"") if kind == "s" else int(token) if kind == "i" else float(token))
        except ValueError:
            critical(f"Failed to read a number from [{line.strip()}].")
    return out


def read_lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        critical(f"Parameter file [{path}] not found.")
    with open(path) as f:
        return f.read().splitlines()


def numbered(stem: str, index: int, last: int, suffix: str) -> str:
    return f"{stem}{index:0{max(3, len(str(last)))}d}{suffix}"


def write_complex(path: str, data: list[complex], header: bytes = b"") -> None:
    flat = [part for z in data for part in (z.real, z.imag)]
    with open(path, "wb") as f:
        f.write(header + struct.pack(f"<{len(flat)}f", *flat))


def read_complex(path: str, count: int, offset: int = 0) -> list[complex]:
    with open(path, "rb") as f:
        raw = f.read()[offset:]
    if len(raw) != 8 * count:
        critical(f"Failed to load {count} complex values from file [{path}] ({len(raw)} bytes).")
    flat = struct.unpack(f"<{2 * count}f", raw)
    return [complex(flat[2 * k], flat[2 * k + 1]) for k in range(count)]


def slice_header(nx: int, ny: int, title: str, thickness_nm: float, ht_kev: float, size_nm: tuple) -> bytes:
    """The EMS slice-file header (emsdata.f90): dimensions, complex data, title, thickness, HT, size."""
    head = bytearray(HEADER_BYTES)
    struct.pack_into("<4i", head, 0x0, nx, ny, nx, ny)
    struct.pack_into("<i", head, 0x10, 1)
    head[0x4C:0x4C + 40] = title.encode()[:40].ljust(40)
    struct.pack_into("<3i", head, 0x74, 2012071101, 1, 0)
    struct.pack_into("<i", head, 0x80, 0)
    struct.pack_into("<f", head, 0x1034, thickness_nm)
    struct.pack_into("<3f", head, 0x1040, ht_kev, size_nm[0], size_nm[1])
    return bytes(head)


def read_slice_header(path: str) -> dict:
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    if len(head) != HEADER_BYTES:
        critical(f"Slice file [{path}] is too short.")
    nx, ny = struct.unpack_from("<2i", head, 0x0)
    thickness, = struct.unpack_from("<f", head, 0x1034)
    ht, sx, sy = struct.unpack_from("<3f", head, 0x1040)
    return {"nx": nx, "ny": ny, "thickness_nm": thickness, "ht_kev": ht, "size_nm": (sx, sy)}
