#!/usr/bin/env python3
"""Profile one bench scenario under callgrind (children=1).

  bench/profile.py replace|auth|reqsend [--variant rust|c|baseline] [--calls N]

Runs Kamailio under `valgrind --tool=callgrind`, sends N calls at a low
rate, stops Kamailio and prints, for the busiest process (the SIP worker),
the total instructions per call and the `callgrind_annotate` summary. The
callgrind files stay in the printed directory (open them with
callgrind_annotate or kcachegrind). Instruction counts are deterministic
enough to compare an optimisation before/after, which wall-clock CPU on a
shared machine is not.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(bench.SCENARIOS))
    ap.add_argument("--variant", default="rust", choices=bench.VARIANTS)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rate", type=int, default=20)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    sc = bench.SCENARIOS[args.scenario]
    outdir = None

    def cfg(port, peer, tmp):
        return bench.render(args.scenario, args.variant, port, peer, tmp, children=1)

    wrap_dir = os.path.join("/tmp", f"uac-prof-{args.scenario}-{args.variant}-{os.getpid()}")
    os.makedirs(wrap_dir, exist_ok=True)
    wrap = ["valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={wrap_dir}/callgrind.out.%p", "-q"]
    k = bench.Kamailio(cfg, f"prof-{args.scenario}", wrap=wrap)
    try:
        check = args.variant != "baseline"
        uas = bench.start_uas(k, sc["uas_xml"].format(check=sc["uas_check"] if check else ""),
                              args.calls)
        time.sleep(0.5)
        bench.run_uac(k, sc["uac_xml"].format(check=sc["uac_check"] if check else ""),
                      args.calls, args.rate)
        bench.wait_uas(k, uas, args.calls, timeout=60)
        bench.scenario_check(k, args.scenario, args.variant, args.calls)
    finally:
        k.stop(keep=True)
    time.sleep(2)
    best = None
    for f in glob.glob(f"{wrap_dir}/callgrind.out.*"):
        with open(f, errors="replace") as fh:
            txt = fh.read()
        m = re.search(r"^(?:summary|totals):\s*(\d+)", txt, re.M)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), f)
    if best is None:
        sys.exit(f"no callgrind output in {wrap_dir}")
    print(f"busiest process {best[1]}: {best[0]} Ir, {best[0] / args.calls:.0f} Ir/call")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", best[1]],
                         capture_output=True, text=True).stdout
    lines = ann.splitlines()
    print("\n".join(lines[:args.top + 20]))
    print(f"files in {wrap_dir}")


if __name__ == "__main__":
    main()
