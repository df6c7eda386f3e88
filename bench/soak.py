#!/usr/bin/env python3
"""Soak test of our uac module (`make soak`, not part of `make test`).

One Kamailio loading target/uac.so handles, in chunks:
  1. SOAK_CALLS calls (default 100000) through uac_replace_from (restore_mode
     auto, restore_passwd) + uac_auth in failure_route: every INVITE is
     challenged with 407 and answered; the callee checks the anonymous From
     and the Proxy-Authorization, the caller checks the restored From;
  2. SOAK_REQS requests (default SOAK_CALLS) generated with uac_req_send
     (evroute=1): each MESSAGE from sipp makes one OPTIONS whose 200 is
     counted in event_route[uac:reply].

After a warm-up and after every chunk, once every transaction is freed, it
records shared memory in use (kamcmd core.shmmem), the process list
(core.psx), the pkg memory each process uses (pkg.stats) and the RSS of
every process. It fails (exit 1) when a call or request fails, a Kamailio
process dies or the process count changes, shm in use does not return to
its level after warm-up (+ SOAK_SHM_TOL bytes, default 65536), pkg in use
of a process grows by more than SOAK_PKG_TOL bytes (default 65536), or the
RSS of a process grows by more than SOAK_RSS_TOL_KB (default 2048) between
the first chunk and the last.

Environment: SOAK_CALLS, SOAK_REQS, SOAK_RATE (calls/s, default 400),
SOAK_REQ_RATE (default 800), SOAK_CHUNKS (default 10), SOAK_JSON (output,
default target/soak.json), BENCH_KEEP=1 keeps the run directory.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import BenchError  # noqa: E402


def env_int(name, default):
    return int(os.environ.get(name, default))


CFG = """
loadmodule "kex.so"
modparam("uac", "restore_mode", "auto")
modparam("uac", "restore_passwd", "soak-secret")
modparam("uac", "credential", "bench:bench.example:secret")

request_route {{
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) t_relay(); exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("MESSAGE")) {{
        $uac_req(all) = $null;
        $uac_req(method) = "OPTIONS";
        $uac_req(ruri) = "sip:probe@127.0.0.1:{req_port}";
        $uac_req(furi) = "sip:soak@127.0.0.1";
        $uac_req(hdrs) = "X-Bench: " + $ci + "\\r\\n";
        $uac_req(evroute) = 1;
        $uac_req(evparam) = $ci;
        if (!uac_req_send()) {{ sl_send_reply("500", "Send failed"); exit; }}
        sl_send_reply("200", "OK");
        exit;
    }}
    record_route();
    if (is_method("INVITE")) uac_replace_from("Anonymous", "sip:anonymous@anonymous.invalid");
    $du = "sip:127.0.0.1:{peer_port}";
    t_on_failure("AUTH");
    t_relay();
}}
failure_route[AUTH] {{
    if (t_is_canceled()) exit;
    if (t_check_status("401|407")) {{
        uac_auth();
        t_relay();
    }}
}}
event_route[uac:reply] {{
    if ($uac_req(evcode) == 200) cnt_inc("done");
}}
"""

# The callee: 407, then checks the answer and the anonymous From.
UAS_CHECK = """
    <action>
      <ereg regexp="Digest username=.bench., realm=.bench.example." search_in="hdr"
            header="Proxy-Authorization:" check_it="true" assign_to="chk"/>
      <ereg regexp=".sip:anonymous@anonymous.invalid." search_in="hdr"
            header="From:" check_it="true" assign_to="chk2"/>
      <log message="[$chk][$chk2]"/>
    </action>"""


def header(port, tmp):
    return bench.HEADER.format(port=port, modules=bench.MODULES, tmp=tmp, children=2,
                               extra_load="", uac_load=f'loadmodule "{bench.RUST_UAC}"')


def pkg_used(k):
    """{pid: pkg bytes in use} from kex's pkg.stats."""
    out = k.kamcmd("pkg.stats")
    res = {}
    for block in out.split("}"):
        pid = re.search(r"\bpid:\s*(\d+)", block)
        used = re.search(r"\bused:\s*(\d+)", block)
        if pid and used:
            res[int(pid.group(1))] = int(used.group(1))
    return res


def snapshot(k, label):
    k.wait_tm_drained(timeout=30)
    time.sleep(0.5)
    snap = {"label": label, "shm_used": k.shm_used(), "psx": k.psx_count(),
            "pkg_used": pkg_used(k),
            "rss_kb": {p: bench.rss_kb(p) for p in k.pids}, "t": time.time()}
    print(f"  {label:<16} shm used {snap['shm_used']:>10}  processes {snap['psx']:>3}  "
          f"pkg max {max(snap['pkg_used'].values()):>8}  "
          f"rss max {max(v or 0 for v in snap['rss_kb'].values()):>7} kB",
          file=sys.stderr, flush=True)
    return snap


def chunks(total, n):
    n = max(1, min(n, total))
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def main():
    calls = env_int("SOAK_CALLS", 100000)
    reqs = env_int("SOAK_REQS", calls)
    rate = env_int("SOAK_RATE", 400)
    req_rate = env_int("SOAK_REQ_RATE", 800)
    nchunks = env_int("SOAK_CHUNKS", 10)
    shm_tol = env_int("SOAK_SHM_TOL", 65536)
    pkg_tol = env_int("SOAK_PKG_TOL", 65536)
    rss_tol = env_int("SOAK_RSS_TOL_KB", 2048)
    out_json = os.environ.get("SOAK_JSON", os.path.join(bench.ROOT, "target", "soak.json"))
    if not os.path.exists(bench.RUST_UAC):
        sys.exit(f"{bench.RUST_UAC} missing: run `make` first")
    req_port = bench.free_port()
    warm = max(50, min(1000, calls // 20))
    warm_reqs = max(50, min(1000, reqs // 20))

    k = bench.Kamailio(lambda port, peer, tmp: header(port, tmp) + CFG.format(
        peer_port=peer, req_port=req_port), "soak", mem_shm=256, mem_pkg=16)
    ok = False
    report = {"calls": calls, "reqs": reqs, "rate": rate, "req_rate": req_rate,
              "snapshots": []}
    started = time.time()
    try:
        call_uas = bench.start_uas(k, bench.AUTH_UAS_XML.format(check=UAS_CHECK),
                                   warm + calls, name="call-uas")
        req_uas_xml = bench.write(os.path.join(k.tmp, "req-uas.xml"),
                                  bench.OPTIONS_UAS_XML.format(check=bench.REQSEND_CHECK))
        req_uas = subprocess.Popen(
            ["sipp", "-sf", req_uas_xml, "-i", "127.0.0.1", "-p", str(req_port),
             "-m", str(warm_reqs + reqs), "-nostdin", "-trace_stat", "-stf",
             os.path.join(k.tmp, "req-uas.csv"), "-fd", "1", "-trace_err", "-error_file",
             os.path.join(k.tmp, "req-uas.err")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=k.tmp)
        time.sleep(0.5)
        call_xml = bench.UAC_XML.format(check=bench.RESTORED_CHECK)
        msg_xml = bench.MESSAGE_UAC_XML.format(check="")
        done = 0

        def calls_chunk(n, label):
            bench.run_uac(k, call_xml, n, rate, name="calls")
            return snapshot(k, label)

        def reqs_chunk(n, label):
            nonlocal done
            bench.run_uac(k, msg_xml, n, req_rate, name="msgs")
            done += n
            deadline = time.time() + 30
            while time.time() < deadline and k.counter("done") < done:
                time.sleep(0.2)
            if k.counter("done") != done:
                raise BenchError(f"{label}: {k.counter('done')}/{done} replies handled")
            return snapshot(k, label)

        snaps = report["snapshots"]
        snaps.append(snapshot(k, "start"))
        snaps.append(calls_chunk(warm, "warm-up calls"))
        snaps.append(reqs_chunk(warm_reqs, "warm-up reqs"))
        base = snaps[-1]
        for i, n in enumerate(chunks(calls, nchunks)):
            snaps.append(calls_chunk(n, f"calls {i + 1}/{nchunks}"))
        for i, n in enumerate(chunks(reqs, nchunks)):
            snaps.append(reqs_chunk(n, f"reqs {i + 1}/{nchunks}"))
        bench.wait_uas(k, call_uas, warm + calls, name="call-uas", timeout=30)
        bench.wait_uas(k, req_uas, warm_reqs + reqs, name="req-uas", timeout=30)
        last = snapshot(k, "end")
        snaps.append(last)
        first = snaps[3]  # after the first chunk of calls

        problems = []
        if not k.alive():
            problems.append("a Kamailio process died")
        if last["psx"] != base["psx"]:
            problems.append(f"process count {base['psx']} -> {last['psx']}")
        if last["shm_used"] > base["shm_used"] + shm_tol:
            problems.append(f"shm used {base['shm_used']} -> {last['shm_used']} "
                            f"(+{last['shm_used'] - base['shm_used']} > {shm_tol})")
        for pid, used in last["pkg_used"].items():
            b = base["pkg_used"].get(pid)
            if b is not None and used > b + pkg_tol:
                problems.append(f"pkg used of {pid} {b} -> {used}")
        for pid, rss in last["rss_kb"].items():
            f = first["rss_kb"].get(pid)
            if rss is None or f is None:
                problems.append(f"process {pid} vanished")
            elif rss > f + rss_tol:
                problems.append(f"RSS of {pid} {f} -> {rss} kB")
        errors = [line for line in open(k.log_path, errors="replace") if " ERROR: " in line]
        if errors:
            problems.append(f"{len(errors)} ERROR lines, first: {errors[0].strip()}")
        report["problems"] = problems
        report["elapsed_s"] = time.time() - started
        report["shm_delta"] = last["shm_used"] - base["shm_used"]
        if problems:
            raise BenchError("; ".join(problems))
        ok = True
        print(f"SOAK OK: {calls} calls (replace+auth) and {reqs} uac_req_send requests in "
              f"{report['elapsed_s']:.0f}s; shm used {base['shm_used']} -> {last['shm_used']}, "
              f"{last['psx']} processes, max RSS growth "
              f"{max((last['rss_kb'][p] or 0) - (first['rss_kb'].get(p) or 0) for p in last['rss_kb'])} kB")
    except BenchError as e:
        print(f"SOAK FAILED: {e} (see {k.tmp})", file=sys.stderr)
    finally:
        k.stop(keep=not ok)
        os.makedirs(os.path.dirname(out_json), exist_ok=True)
        with open(out_json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
