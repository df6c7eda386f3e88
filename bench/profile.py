#!/usr/bin/env python3
"""Profile one bench scenario under callgrind (children=1).

  bench/profile.py replace|auth|reqsend [--variant rust|c|baseline] [--calls N]
  bench/profile.py replace|auth|reqsend --allocs   (allocations per call, all variants)

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
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


ALLOCATORS = {"pkg": ("qm_malloc", "fm_malloc", "tlsf_malloc"),
              "shm": ("qm_shm_malloc", "fm_shm_malloc", "tlsf_shm_malloc")}


def alloc_calls(path):
    """Calls of the core's pkg and shm allocators in a callgrind file (every
    `calls=` line under a `cfn=` naming one of them; names are compressed
    to `(id)` after their first use)."""
    names, counts, current = {}, {"pkg": 0, "shm": 0}, None
    with open(path) as f:
        for line in f:
            if line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    fn = names.get(m.group(1), "")
                else:
                    fn = line.strip()[4:]
                current = next((k for k, fns in ALLOCATORS.items() if fn in fns), None)
            elif line.startswith("calls=") and current:
                counts[current] += int(line[6:].split()[0])
                current = None
    return counts


def allocs_per_call(scenario, calls):
    """Per call: allocations in a run of 2N calls minus a run of N calls,
    divided by N (start-up and the warm-up cancel out)."""
    out = {}
    for variant in bench.VARIANTS:
        got = []
        for n in (calls, 2 * calls):
            _, f = bench.run_callgrind(scenario, variant, n)
            got.append(alloc_calls(f))
        out[variant] = {k: (got[1][k] - got[0][k]) / calls for k in ("pkg", "shm")}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(bench.SCENARIOS))
    ap.add_argument("--variant", default="rust", choices=bench.VARIANTS)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--mem-manager", choices=["fm", "tlsf"], default=None)
    ap.add_argument("--allocs", action="store_true",
                    help="count pkg/shm allocations per call for every variant")
    args = ap.parse_args()
    bench.MEM_MANAGER = args.mem_manager
    if args.allocs:
        res = allocs_per_call(args.scenario, args.calls)
        print(f"{args.scenario}: allocations per call of the SIP worker "
              f"(runs of {args.calls} and {2 * args.calls} calls)")
        for v, r in res.items():
            extra = "" if v == "baseline" else (
                f"   added: pkg {r['pkg'] - res['baseline']['pkg']:.1f}"
                f" shm {r['shm'] - res['baseline']['shm']:.1f}")
            print(f"  {v:<9} pkg {r['pkg']:7.1f}  shm {r['shm']:6.1f}{extra}")
        return
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
