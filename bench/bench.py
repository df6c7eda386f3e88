#!/usr/bin/env python3
"""Side-by-side benchmark: Kamailio 5.6.3 run three ways under the same sipp load.

  baseline  the scenario's config without uac calls
  c         Debian's C uac.so
  rust      our target/uac.so

Runs alternate (baseline, c, rust, baseline, c, rust, ...) to cancel machine
noise. For each run: CPU time (utime+stime from /proc) of all Kamailio
processes, before and after the load, divided by the calls completed.
Reports per scenario the median and spread, the cost each module adds over
the baseline, and the ratio rust/c of that added cost. Writes JSON.

Usage: bench/bench.py [--scenarios replace,auth,reqsend,register]
                      [--calls N] [--rate R] [--rounds K] [--json out.json]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
C_UAC = os.path.join(MODULES, "uac.so")
RUST_UAC = os.path.join(ROOT, "target", "uac.so")
SQL_DIR = "/usr/share/kamailio/db_sqlite"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total


def kamailio_pids(main_pid):
    pids = [main_pid]
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(main_pid)],
                         capture_output=True, text=True).stdout
    pids += [int(p) for p in out.split()]
    return pids


HEADER = """#!KAMAILIO
debug=1
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{modules}/"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{tmp}/ctl.sock")
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "db_sqlite.so"
{uac_load}
"""

PROXY_ROUTE = """
request_route {{
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) t_relay(); exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    record_route();
    {uac_call}
    $du = "sip:127.0.0.1:{peer_port}";
    {failure}
    t_relay();
}}
failure_route[AUTH] {{
    if (t_is_canceled()) exit;
    if (t_check_status("401|407")) {{
        {auth_call}
        t_relay();
    }}
}}
"""

# The UAS for `auth`: 407 to each new INVITE, then 200 to the authenticated one.
AUTH_UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="challenge then accept">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 407 Proxy Authentication Required
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Proxy-Authenticate: Digest realm="bench.example", nonce="[call_number]abcdef", qop="auth"
Content-Length: 0

]]></send>
  <recv request="ACK"/>
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag02[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <recv request="ACK" optional="false"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

# The UAC: INVITE, 200 (Record-Route kept), ACK and BYE through the proxy.
UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call through record-routing proxy">
  <send retrans="500"><![CDATA[
INVITE sip:service@127.0.0.1:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Alice" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:service@127.0.0.1:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true" rtd="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: "Alice" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: "Alice" <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""

# The plain UAS: 200 (with the Record-Route copied), ACK, BYE/200.
UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="accept">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

SCENARIOS = {
    "replace": {
        "params": 'modparam("uac", "restore_mode", "auto")\n'
                  'modparam("uac", "restore_passwd", "bench-secret")\n',
        "uac_call": 'if (is_method("INVITE")) uac_replace_from("Anonymous", "sip:anonymous@anonymous.invalid");',
        "auth_call": "",
        "failure": "",
        "uas_xml": UAS_XML,
    },
    "auth": {
        "params": 'modparam("uac", "credential", "bench:bench.example:secret")\n',
        "uac_call": "",
        "auth_call": "uac_auth();",
        "failure": 't_on_failure("AUTH");',
        "uas_xml": AUTH_UAS_XML,
    },
}


def render(scenario, variant, port, peer_port, tmp):
    sc = SCENARIOS[scenario]
    if variant == "baseline":
        uac_load = ""
        params = ""
        uac_call = ""
        auth_call = ""
    else:
        path = C_UAC if variant == "c" else RUST_UAC
        uac_load = f'loadmodule "{path}"\n'
        params = sc["params"]
        uac_call = sc["uac_call"]
        auth_call = sc["auth_call"]
    failure = sc["failure"]
    if variant == "baseline" and scenario == "auth":
        # Without uac the retry carries no credentials; the UAS accepts any
        # second INVITE, so the message flow stays identical.
        pass
    return (HEADER.format(port=port, modules=MODULES, tmp=tmp, uac_load=uac_load)
            + params
            + PROXY_ROUTE.format(uac_call=uac_call, peer_port=peer_port,
                                 failure=failure, auth_call=auth_call))


def run_once(scenario, variant, calls, rate):
    tmp = tempfile.mkdtemp(prefix=f"uac-bench-{scenario}-{variant}-")
    port, peer_port = free_port(), free_port()
    cfg = os.path.join(tmp, "kamailio.cfg")
    with open(cfg, "w") as f:
        f.write(render(scenario, variant, port, peer_port, tmp))
    log = open(os.path.join(tmp, "kamailio.log"), "w")
    kam = subprocess.Popen(["kamailio", "-DD", "-E", "-m", "256", "-M", "16", "-f", cfg, "-Y", tmp],
                           stdout=log, stderr=log)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            if subprocess.run(["kamcmd", "-s", f"unix:{tmp}/ctl.sock", "core.uptime"],
                              capture_output=True).returncode == 0:
                break
            if kam.poll() is not None:
                raise RuntimeError(f"kamailio died, see {tmp}/kamailio.log")
            time.sleep(0.05)
        sc = SCENARIOS[scenario]
        xml = os.path.join(tmp, "uas.xml")
        with open(xml, "w") as f:
            f.write(sc["uas_xml"])
        uas_args = ["-sf", xml]
        uas = subprocess.Popen(["sipp", *uas_args, "-i", "127.0.0.1", "-p", str(peer_port),
                                "-bg", "-nostdin"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        pids = kamailio_pids(kam.pid)
        before = proc_cpu_ticks(pids)
        uac_xml = os.path.join(tmp, "uac.xml")
        with open(uac_xml, "w") as f:
            f.write(UAC_XML)
        uac = subprocess.run(["sipp", "-sf", uac_xml, "-i", "127.0.0.1", "-p", str(free_port()),
                              f"127.0.0.1:{port}", "-m", str(calls), "-r", str(rate),
                              "-nostdin", "-timeout", "120", "-trace_stat", "-stf",
                              os.path.join(tmp, "stat.csv")],
                             capture_output=True, text=True)
        after = proc_cpu_ticks(pids)
        ok = calls if uac.returncode == 0 else count_successful(os.path.join(tmp, "stat.csv"))
        return {"cpu_s": (after - before) / CLK_TCK, "calls": ok,
                "us_per_call": 1e6 * (after - before) / CLK_TCK / max(ok, 1),
                "alive": kam.poll() is None}
    finally:
        subprocess.run(["pkill", "-f", f"-p {peer_port}"], capture_output=True)
        kam.send_signal(signal.SIGTERM)
        try:
            kam.wait(10)
        except subprocess.TimeoutExpired:
            kam.kill()
        log.close()
        if os.environ.get("BENCH_KEEP"):
            print("kept", tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def count_successful(stat_csv):
    try:
        with open(stat_csv) as f:
            lines = [l.strip().split(";") for l in f if l.strip()]
        head, last = lines[0], lines[-1]
        return int(last[head.index("SuccessfulCall(C)")])
    except (OSError, ValueError, IndexError):
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="replace,auth")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "bench.json"))
    args = ap.parse_args()
    if not os.path.exists(RUST_UAC):
        sys.exit(f"{RUST_UAC} missing: run `make` first")
    results = {}
    for scenario in args.scenarios.split(","):
        samples = {"baseline": [], "c": [], "rust": []}
        for _ in range(args.rounds):
            for variant in ("baseline", "c", "rust"):
                r = run_once(scenario, variant, args.calls, args.rate)
                if not r["alive"]:
                    print(f"!! {scenario}/{variant}: kamailio died", file=sys.stderr)
                samples[variant].append(r["us_per_call"])
        med = {v: statistics.median(s) for v, s in samples.items()}
        spread = {v: (max(s) - min(s)) for v, s in samples.items()}
        added_c = med["c"] - med["baseline"]
        added_rust = med["rust"] - med["baseline"]
        results[scenario] = {
            "samples_us_per_call": samples,
            "median_us_per_call": med,
            "spread_us_per_call": spread,
            "added_us_per_call": {"c": added_c, "rust": added_rust},
            "ratio_rust_over_c": (added_rust / added_c) if added_c > 0 else None,
        }
    print(f"{'scenario':<10} {'variant':<9} {'median us/call':>15} {'spread':>8} {'added':>8}")
    for scenario, r in results.items():
        for v in ("baseline", "c", "rust"):
            added = "" if v == "baseline" else f"{r['added_us_per_call'][v]:8.1f}"
            print(f"{scenario:<10} {v:<9} {r['median_us_per_call'][v]:15.1f} "
                  f"{r['spread_us_per_call'][v]:8.1f} {added:>8}")
        ratio = r["ratio_rust_over_c"]
        print(f"{scenario:<10} ratio rust/c of added CPU: "
              f"{'n/a' if ratio is None else f'{ratio:.2f}'}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"calls": args.calls, "rate": args.rate, "rounds": args.rounds,
                   "results": results}, f, indent=2)
    print(f"JSON written to {args.json}")


if __name__ == "__main__":
    main()
