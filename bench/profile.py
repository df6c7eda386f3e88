#!/usr/bin/env python3
"""Profile one bench scenario under callgrind (children=1).

  bench/profile.py replace|auth|reqsend [--variant rust|c|baseline] [--calls N]

Runs Kamailio under `valgrind --tool=callgrind`, sends N calls through it
(every call checked as in bench.py), stops Kamailio and prints the SIP
worker's instructions per call (inclusive cost of its receive loop) and the
functions of the uac module with their inclusive cost. The callgrind file
stays where printed (callgrind_annotate --inclusive=yes --tree=calling, or
kcachegrind). Instruction counts are deterministic to a few tenths of a
percent, which CPU time on a shared machine is not: use them for an
optimisation's before/after.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(bench.SCENARIOS))
    ap.add_argument("--variant", default="rust", choices=bench.VARIANTS)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--mem-manager", choices=["fm", "tlsf"], default=None)
    args = ap.parse_args()
    bench.MEM_MANAGER = args.mem_manager
    ir, f = bench.run_callgrind(args.scenario, args.variant, args.calls)
    print(f"{args.scenario}/{args.variant}: {ir:.0f} Ir/call (SIP worker, {args.calls} calls)")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", f],
                         capture_output=True, text=True).stdout
    mod = "target/uac.so" if args.variant == "rust" else "modules/uac.so"
    lines = [line for line in ann.splitlines() if mod in line]
    print("\n".join(lines[:args.top]))
    print(f"callgrind file: {f}")


if __name__ == "__main__":
    main()
