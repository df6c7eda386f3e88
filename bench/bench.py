#!/usr/bin/env python3
"""Side-by-side benchmark: Kamailio 5.6.3 run three ways under the same sipp load.

  baseline  the scenario's config without uac calls (see each scenario for
            what "the same work without uac" means)
  c         Debian's C uac.so
  rust      our target/uac.so

Runs alternate (baseline, c, rust, baseline, c, rust, ...) to cancel machine
noise. For each run we sum the on-CPU time of every thread of every Kamailio
process from /proc/<pid>/task/<tid>/schedstat (nanoseconds, unlike the 10 ms
ticks of /proc/<pid>/stat) before the load starts and after the load is done
and every transaction has been freed, and divide by the number of calls.

Every run must complete all calls: the sipp client and server must both
finish every call, the module variants are checked on the wire (sipp
check_it on the header the module writes) and the scenario's own check runs
(e.g. counters). Any failure aborts the benchmark with exit status 1 and
keeps the run directory for inspection.

Reported per scenario: median and spread (min..max) of the CPU per call of
each variant, the added cost of each module (median over rounds of
variant - baseline of the same round) and the ratio rust/c of the added cost.

Usage: bench/bench.py [--scenarios replace,auth,reqsend[,register]]
                      [--calls N] [--rate R] [--rounds K] [--json out.json]
                      [--reg-accounts 1000,10000] [--reg-100k]
"""

import argparse
import json
import os
import re
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
VARIANTS = ("baseline", "c", "rust")
# Kamailio's memory manager (`-x`): None = the default (q_malloc), or "fm",
# "tlsf". Set by --mem-manager.
MEM_MANAGER = None


class BenchError(Exception):
    pass


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ns(pids):
    """On-CPU nanoseconds of every thread of `pids` (schedstat field 1)."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def child_pids(main_pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(main_pid)],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


HEADER = """#!KAMAILIO
debug=1
log_stderror=yes
children={children}
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{modules}/"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{tmp}/ctl.sock")
loadmodule "tm.so"
modparam("tm", "wt_timer", 1000)
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "counters.so"
modparam("counters", "script_counter", "done")
{extra_load}
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

# The UAS for `auth`: 407 to each new INVITE, then 200 to the authenticated
# one. {check} verifies (module variants) that the retry carries the answer.
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
  <recv request="INVITE" crlf="true">{check}</recv>
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

AUTH_CHECK = """
    <action>
      <ereg regexp="Digest username=.bench., realm=.bench.example." search_in="hdr"
            header="Proxy-Authorization:" check_it="true" assign_to="chk"/>
      <log message="[$chk]"/>
    </action>"""

# The UAC: INVITE, 200 (Record-Route kept), ACK and BYE through the proxy.
# {check} verifies (replace, module variants) that From is restored to the
# caller's original in the 200.
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
  <recv response="200" rrs="true" rtd="true">{check}</recv>
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
  <!-- Two proxy workers may reorder back-to-back ACK and BYE. -->
  <pause milliseconds="50"/>
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
  <recv response="200" crlf="true">{check}</recv>
</scenario>
"""

RESTORED_CHECK = """
    <action>
      <ereg regexp=".sip:alice@" search_in="hdr" header="From:"
            check_it="true" assign_to="chk"/>
      <log message="[$chk]"/>
    </action>"""

# The plain UAS: 200 (with the Record-Route copied), ACK, BYE/200.
# {check} verifies (replace, module variants) that the callee sees the
# anonymous From on the INVITE and on the BYE.
UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="accept">
  <recv request="INVITE" crlf="true">{check}</recv>
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
  <recv request="BYE">{check}</recv>
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

ANON_CHECK = """
    <action>
      <ereg regexp=".sip:anonymous@anonymous.invalid." search_in="hdr"
            header="From:" check_it="true" assign_to="chk"/>
      <log message="[$chk]"/>
    </action>"""

# reqsend: the sipp client sends MESSAGE; the proxy answers it statelessly
# and generates one OPTIONS towards the sipp server, whose 200 is handled in
# the reply route.
MESSAGE_UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="message">
  <send retrans="500"><![CDATA[
MESSAGE sip:service@127.0.0.1:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:service@127.0.0.1:[remote_port]>
Call-ID: [call_id]
CSeq: 1 MESSAGE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

OPTIONS_UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options responder">
  <recv request="OPTIONS">{check}</recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

REQSEND_CHECK = """
    <action>
      <ereg regexp="^ *[0-9a-zA-Z._-]+@?" search_in="hdr" header="X-Bench:"
            check_it="true" assign_to="chk"/>
      <log message="[$chk]"/>
    </action>"""

# The generated request. Module variants fill $uac_req and call
# uac_req_send() with evroute=1; the reply lands in event_route[uac:reply].
REQSEND_MODULE = """
request_route {{
    if (!is_method("MESSAGE")) {{ sl_send_reply("405", "No"); exit; }}
    $uac_req(all) = $null;
    $uac_req(method) = "OPTIONS";
    $uac_req(ruri) = "sip:probe@127.0.0.1:{peer_port}";
    $uac_req(furi) = "sip:bench@127.0.0.1";
    $uac_req(turi) = "sip:probe@127.0.0.1";
    $uac_req(hdrs) = "X-Bench: " + $ci + "\\r\\n";
    $uac_req(evroute) = 1;
    $uac_req(evparam) = $ci;
    if (!uac_req_send()) {{ sl_send_reply("500", "Send failed"); exit; }}
    sl_send_reply("200", "OK");
    exit;
}}
event_route[uac:reply] {{
    if ($uac_req(evcode) == 200) cnt_inc("done");
}}
"""

# Baseline: the same MESSAGE handling (stateless 200, the same counter bump)
# without generating a request. The added cost is thus everything
# uac_req_send() brings: filling $uac_req, building the request, the tm UAC
# transaction and its reply, the callback state and event_route[uac:reply].
# tm's own t_uac_send() of an identical OPTIONS was tried as a floor for
# "the same work without uac" and rejected: it costs more than either module
# (it re-parses the header string it is given), so the added cost of both
# modules came out negative.
REQSEND_BASELINE = """
request_route {{
    if (!is_method("MESSAGE")) {{ sl_send_reply("405", "No"); exit; }}
    cnt_inc("done");
    sl_send_reply("200", "OK");
    exit;
}}
"""

SCENARIOS = {
    "replace": {
        "doc": "INVITE/200/ACK/BYE through a record-routing proxy; uac_replace_from "
               "with restore_mode auto + restore_passwd (baseline: same routing)",
        "params": 'modparam("uac", "restore_mode", "auto")\n'
                  'modparam("uac", "restore_passwd", "bench-secret")\n',
        "uac_call": 'if (is_method("INVITE")) uac_replace_from("Anonymous", '
                    '"sip:anonymous@anonymous.invalid");',
        "auth_call": "",
        "failure": "",
        "uas_xml": UAS_XML, "uas_check": ANON_CHECK,
        "uac_xml": UAC_XML, "uac_check": RESTORED_CHECK,
    },
    "auth": {
        "doc": "callee answers each INVITE with 407; uac_auth() in failure_route, "
               "then 200/ACK/BYE (baseline: same retry without credentials)",
        "params": 'modparam("uac", "credential", "bench:bench.example:secret")\n',
        "uac_call": "",
        "auth_call": "uac_auth();",
        "failure": 't_on_failure("AUTH");',
        "uas_xml": AUTH_UAS_XML, "uas_check": AUTH_CHECK,
        "uac_xml": UAC_XML, "uac_check": "",
    },
    "reqsend": {
        "doc": "each MESSAGE from sipp makes the proxy send an OPTIONS with "
               "uac_req_send (evroute=1, event_route[uac:reply]) and reply 200 "
               "statelessly (baseline: the same stateless 200, no request generated)",
        "params": "",
        "uas_xml": OPTIONS_UAS_XML, "uas_check": REQSEND_CHECK,
        "uac_xml": MESSAGE_UAC_XML, "uac_check": "",
    },
}


def render(scenario, variant, port, peer_port, tmp, children=2):
    sc = SCENARIOS[scenario]
    if variant == "baseline":
        uac_load = params = uac_call = ""
        # uac_auth() marks the R-URI as new so that t_relay() in the failure
        # route may reuse it; the baseline does the same without credentials.
        auth_call = '$ru = $ru; $du = "sip:127.0.0.1:%d";' % peer_port if scenario == "auth" else ""
    else:
        path = C_UAC if variant == "c" else RUST_UAC
        uac_load = f'loadmodule "{path}"\n'
        params = sc["params"]
        uac_call = sc.get("uac_call", "")
        auth_call = sc.get("auth_call", "")
    head = HEADER.format(port=port, modules=MODULES, tmp=tmp, uac_load=uac_load,
                         children=children, extra_load="")
    if scenario == "reqsend":
        body = REQSEND_BASELINE if variant == "baseline" else REQSEND_MODULE
        return head + params + body.format(peer_port=peer_port)
    return head + params + PROXY_ROUTE.format(
        uac_call=uac_call, peer_port=peer_port, failure=sc["failure"], auth_call=auth_call)


class Kamailio:
    """One Kamailio instance in a temporary directory."""

    def __init__(self, cfg_text_fn, name, mem_shm=256, mem_pkg=16, wrap=()):
        self.tmp = tempfile.mkdtemp(prefix=f"uac-bench-{name}-")
        self.port, self.peer_port = free_port(), free_port()
        self.cfg = os.path.join(self.tmp, "kamailio.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg_text_fn(self.port, self.peer_port, self.tmp))
        self.log_path = os.path.join(self.tmp, "kamailio.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*wrap, "kamailio", "-DD", "-E", "-m", str(mem_shm), "-M", str(mem_pkg),
             *(["-x", MEM_MANAGER] if MEM_MANAGER else []),
             "-f", self.cfg, "-Y", self.tmp], stdout=self.log, stderr=self.log)
        deadline = time.time() + (120 if wrap else 30)
        while time.time() < deadline:
            if self.try_kamcmd("core.uptime") is not None:
                break
            if self.proc.poll() is not None:
                raise BenchError(f"kamailio died at start, see {self.log_path}")
            time.sleep(0.05)
        else:
            raise BenchError(f"kamailio ctl never came up, see {self.log_path}")
        self.pids = [self.proc.pid] + child_pids(self.proc.pid)

    def try_kamcmd(self, *args, timeout=30):
        r = subprocess.run(["kamcmd", "-s", f"unix:{self.tmp}/ctl.sock", *args],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout if r.returncode == 0 else None

    def kamcmd(self, *args, timeout=30):
        out = self.try_kamcmd(*args, timeout=timeout)
        if out is None:
            raise BenchError(f"kamcmd {' '.join(args)} failed ({self.tmp})")
        return out

    def alive(self):
        return self.proc.poll() is None and all(os.path.exists(f"/proc/{p}") for p in self.pids)

    def cpu_ns(self):
        return cpu_ns(self.pids)

    def shm_used(self):
        m = re.search(r"\bused:\s*(\d+)", self.kamcmd("core.shmmem"))
        return int(m.group(1))

    def psx_count(self):
        return len(re.findall(r"\bIDX:", self.kamcmd("core.psx")))

    def counter(self, name):
        out = self.kamcmd("cnt.get", "script", name)
        return int(out.strip().split()[-1])

    def tm_current(self):
        m = re.search(r"\bcurrent:\s*(\d+)", self.kamcmd("tm.stats"))
        return int(m.group(1))

    def wait_tm_drained(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.tm_current() == 0:
                return
            time.sleep(0.2)
        raise BenchError(f"tm transactions still alive after {timeout}s ({self.tmp})")

    def stop(self, keep=False):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if keep or os.environ.get("BENCH_KEEP"):
            print("kept", self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def start_uas(k, xml_text, calls, name="uas"):
    xml = write(os.path.join(k.tmp, f"{name}.xml"), xml_text)
    return subprocess.Popen(
        ["sipp", "-sf", xml, "-i", "127.0.0.1", "-p", str(k.peer_port), "-m", str(calls),
         "-nostdin", "-trace_stat", "-stf", os.path.join(k.tmp, f"{name}.csv"), "-fd", "1",
         "-trace_err", "-error_file", os.path.join(k.tmp, f"{name}.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=k.tmp)


def run_uac(k, xml_text, calls, rate, name="uac", timeout=600):
    xml = write(os.path.join(k.tmp, f"{name}.xml"), xml_text)
    stat = os.path.join(k.tmp, f"{name}.csv")
    r = subprocess.run(
        ["sipp", "-sf", xml, "-i", "127.0.0.1", "-p", str(free_port()),
         f"127.0.0.1:{k.port}", "-m", str(calls), "-r", str(rate), "-l", str(max(rate, 100)),
         "-nostdin", "-timeout", str(timeout), "-trace_stat", "-stf", stat, "-fd", "1",
         "-trace_err", "-error_file", os.path.join(k.tmp, f"{name}.err")],
        capture_output=True, text=True, cwd=k.tmp)
    ok, failed = sipp_counts(stat)
    if r.returncode != 0 or ok != calls or failed != 0:
        raise BenchError(f"{name}: sipp exit {r.returncode}, {ok}/{calls} calls ok, "
                         f"{failed} failed (see {k.tmp})")


def wait_uas(k, uas, calls, name="uas", timeout=20):
    try:
        rc = uas.wait(timeout)
    except subprocess.TimeoutExpired:
        uas.terminate()
        uas.wait()
        rc = None
    ok, failed = sipp_counts(os.path.join(k.tmp, f"{name}.csv"))
    if rc != 0 or ok != calls or failed != 0:
        raise BenchError(f"{name}: sipp exit {rc}, {ok}/{calls} calls ok, {failed} failed "
                         f"(see {k.tmp})")


def sipp_counts(stat_csv):
    try:
        with open(stat_csv) as f:
            lines = [line.strip().split(";") for line in f if line.strip()]
        head, last = lines[0], lines[-1]
        return (int(last[head.index("SuccessfulCall(C)")]),
                int(last[head.index("FailedCall(C)")]))
    except (OSError, ValueError, IndexError):
        return 0, -1


def scenario_check(k, scenario, variant, calls):
    if scenario == "reqsend":
        # Every generated request got its 200 through the reply route.
        deadline = time.time() + 10
        while time.time() < deadline and k.counter("done") < calls:
            time.sleep(0.1)
        n = k.counter("done")
        if n != calls:
            raise BenchError(f"reqsend/{variant}: {n}/{calls} replies handled ({k.tmp})")


def drive(k, scenario, variant, calls, rate, uas_timeout=20):
    """Runs `calls` calls of `scenario` through `k` and checks every one."""
    sc = SCENARIOS[scenario]
    check = variant != "baseline"
    # reqsend's baseline generates no request, so no server is needed.
    uas = None
    if not (scenario == "reqsend" and variant == "baseline"):
        uas = start_uas(k, sc["uas_xml"].format(check=sc["uas_check"] if check else ""), calls)
        time.sleep(0.3)
    before = k.cpu_ns()
    t0 = time.time()
    run_uac(k, sc["uac_xml"].format(check=sc["uac_check"] if check else ""), calls, rate)
    if uas is not None:
        wait_uas(k, uas, calls, timeout=uas_timeout)
    scenario_check(k, scenario, variant, calls)
    k.wait_tm_drained(timeout=max(15, uas_timeout))
    wall = time.time() - t0
    after = k.cpu_ns()
    if not k.alive():
        raise BenchError(f"{scenario}/{variant}: a kamailio process died ({k.tmp})")
    errors = [line for line in open(k.log_path, errors="replace") if " ERROR: " in line]
    if errors:
        raise BenchError(f"{scenario}/{variant}: {len(errors)} ERROR lines, first: "
                         f"{errors[0].strip()} ({k.tmp})")
    return {"cpu_ns": after - before, "calls": calls, "wall_s": wall,
            "us_per_call": (after - before) / 1000.0 / calls}


def run_interleaved(scenario, calls, rate, rounds, warmup):
    """The three variants side by side, load alternating between them.

    The three Kamailio instances run at the same time; each round sends a
    chunk of `calls` calls to each in turn (the order rotates every round),
    so machine noise (the other tenants of a shared host) hits all three
    alike. After a warm-up chunk each (first-touch page faults, lazy
    initialisation), the sample of a variant for one round is the on-CPU
    time of its processes from the start of the round to the start of the
    next (the end: after every transaction is freed), divided by `calls`.
    Returns {variant: [us per call per round]}.
    """
    sc = SCENARIOS[scenario]
    inst, uas = {}, {}
    total = warmup + rounds * calls
    failed = True
    try:
        for v in VARIANTS:
            inst[v] = Kamailio(lambda port, peer, tmp, v=v: render(scenario, v, port, peer, tmp),
                               f"{scenario}-{v}")
            if not (scenario == "reqsend" and v == "baseline"):
                check = sc["uas_check"] if v != "baseline" else ""
                uas[v] = start_uas(inst[v], sc["uas_xml"].format(check=check), total)
        time.sleep(0.3)
        xml = {v: sc["uac_xml"].format(check=sc["uac_check"] if v != "baseline" else "")
               for v in VARIANTS}
        for v in VARIANTS:
            run_uac(inst[v], xml[v], warmup, rate, name=f"warmup")
        for v in VARIANTS:
            inst[v].wait_tm_drained()
        marks = [{v: inst[v].cpu_ns() for v in VARIANTS}]
        for r in range(rounds):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for v in order:
                run_uac(inst[v], xml[v], calls, rate, name=f"uac{r}")
            if r + 1 < rounds:
                marks.append({v: inst[v].cpu_ns() for v in VARIANTS})
        for v in VARIANTS:
            if v in uas:
                wait_uas(inst[v], uas[v], total)
            scenario_check(inst[v], scenario, v, total)
            inst[v].wait_tm_drained()
        marks.append({v: inst[v].cpu_ns() for v in VARIANTS})
        for v in VARIANTS:
            k = inst[v]
            if not k.alive():
                raise BenchError(f"{scenario}/{v}: a kamailio process died ({k.tmp})")
            errors = [line for line in open(k.log_path, errors="replace") if " ERROR: " in line]
            if errors:
                raise BenchError(f"{scenario}/{v}: {len(errors)} ERROR lines, first: "
                                 f"{errors[0].strip()} ({k.tmp})")
        failed = False
        return {v: [(marks[r + 1][v] - marks[r][v]) / 1000.0 / calls for r in range(rounds)]
                for v in VARIANTS}
    finally:
        for v, u in uas.items():
            if u.poll() is None:
                u.terminate()
                u.wait()
        for k in inst.values():
            k.stop(keep=failed)


def run_callgrind(scenario, variant, calls, rate=25, keep=False):
    """Instructions per call of the SIP worker, under callgrind (children=1).

    Counts the inclusive cost of the worker's receive loop (udp_rcv_loop):
    every message it handles, nothing of start-up (which a forked child's
    callgrind file otherwise inherits from the parent). Deterministic to a
    few tenths of a percent, unlike CPU time on a shared machine. Returns
    (Ir per call, callgrind file).
    """
    outdir = tempfile.mkdtemp(prefix=f"uac-cg-{scenario}-{variant}-")
    wrap = ["valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={outdir}/callgrind.out.%p", "-q"]
    k = Kamailio(lambda port, peer, tmp: render(scenario, variant, port, peer, tmp,
                                                children=1),
                 f"cg-{scenario}-{variant}", wrap=wrap)
    failed = True
    try:
        drive(k, scenario, variant, calls, rate, uas_timeout=60)
        failed = False
    finally:
        k.stop(keep=failed)
    best = None
    for name in os.listdir(outdir):
        f = os.path.join(outdir, name)
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", f],
                             capture_output=True, text=True).stdout
        m = re.search(r"^\s*([\d,]+) .*\budp_rcv_loop\b", ann, re.M)
        if m:
            ir = int(m.group(1).replace(",", ""))
            if best is None or ir > best[0]:
                best = (ir, f)
    if best is None:
        raise BenchError(f"callgrind: no worker profile in {outdir}")
    if not keep:
        for name in os.listdir(outdir):
            if os.path.join(outdir, name) != best[1]:
                os.unlink(os.path.join(outdir, name))
    return best[0] / calls, best[1]


def summarize(samples):
    med = {v: statistics.median(s) for v, s in samples.items()}
    spread = {v: [min(s), max(s)] for v, s in samples.items()}
    added, added_spread = {}, {}
    for v in ("c", "rust"):
        diffs = [x - b for x, b in zip(samples[v], samples["baseline"])]
        added[v] = statistics.median(diffs)
        added_spread[v] = [min(diffs), max(diffs)]
    ratio = added["rust"] / added["c"] if added["c"] > 0 else None
    return {"samples_us_per_call": samples, "median_us_per_call": med,
            "spread_us_per_call": spread, "added_us_per_call": added,
            "added_spread_us_per_call": added_spread, "ratio_rust_over_c": ratio}


def summarize_ir(ir):
    added = {v: ir[v] - ir["baseline"] for v in ("c", "rust")}
    return {"ir_per_call": ir, "added_ir_per_call": added,
            "ratio_rust_over_c": added["rust"] / added["c"] if added["c"] > 0 else None}


def print_ir_table(results, out=sys.stdout):
    rows = [(s, r["callgrind"]) for s, r in results.items() if "callgrind" in r]
    if not rows:
        return
    print(f"\ninstructions per call of the SIP worker (callgrind, children=1)", file=out)
    print(f"{'scenario':<9} {'baseline':>10} {'c':>10} {'rust':>10} {'added c':>9} "
          f"{'added rust':>10} {'rust/c':>7}", file=out)
    for scenario, r in rows:
        ir, added, ratio = r["ir_per_call"], r["added_ir_per_call"], r["ratio_rust_over_c"]
        print(f"{scenario:<9} {ir['baseline']:10.0f} {ir['c']:10.0f} {ir['rust']:10.0f} "
              f"{added['c']:9.0f} {added['rust']:10.0f} "
              f"{'n/a' if ratio is None else f'{ratio:.2f}':>7}", file=out)


def print_table(results, out=sys.stdout):
    print(f"\n{'scenario':<9} {'variant':<9} {'median us/call':>14} {'min..max':>15} "
          f"{'added us/call':>13} {'added min..max':>16}", file=out)
    for scenario, r in results.items():
        if scenario == "register":
            continue
        if "median_us_per_call" not in r:
            continue
        for v in VARIANTS:
            lo, hi = r["spread_us_per_call"][v]
            if v == "baseline":
                added = added_sp = ""
            else:
                added = f"{r['added_us_per_call'][v]:.1f}"
                alo, ahi = r["added_spread_us_per_call"][v]
                added_sp = f"{alo:.1f}..{ahi:.1f}"
            print(f"{scenario:<9} {v:<9} {r['median_us_per_call'][v]:14.1f} "
                  f"{f'{lo:.1f}..{hi:.1f}':>15} {added:>13} {added_sp:>16}", file=out)
        ratio = r["ratio_rust_over_c"]
        print(f"{scenario:<9} ratio rust/c of added CPU: "
              f"{'n/a' if ratio is None else f'{ratio:.2f}'}\n", file=out)
    print_ir_table(results, out)
    if "register" in results:
        print_register(results["register"], out)


# ---------------------------------------------------------------------------
# register: N accounts in SQLite against a fast sipp registrar (200 OK with
# Contact;expires=3600), for both modules (no baseline: without uac there is
# nothing to register).
#
#   load_s        Kamailio started -> counter uac:regtotal == N (rows loaded;
#                 regtotal is exact in both modules, unlike regactive, which
#                 drifts in C 5.6.3)
#   answered_s    Kamailio started -> the registrar answered N REGISTERs (sipp
#                 statistics, written every second)
#   registered_s  Kamailio started -> every record has flag 4 (registered) in
#                 `kamcmd uac.reg_info` (all records, polled back to back; a poll
#                 of 100k records takes seconds, so this is the check, and
#                 answered_s the timing)
#   shm_per_record (shm used with N rows - shm used with 0 rows) / N, both
#                 read once all records are registered
#   cycle (--reg-cycle S; the registrar grants expires=S): once all are
#                 registered, the CPU time of every Kamailio process over
#                 the next S seconds (one refresh period) and the REGISTERs
#                 the registrar answered meanwhile (sipp's statistics), so
#                 CPU per refresh cycle and per refresh REGISTER
# ---------------------------------------------------------------------------

REGISTRAR_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="fast registrar">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires={expires}
Content-Length: 0

]]></send>
</scenario>
"""

REGISTER_CFG = """
loadmodule "db_sqlite.so"
{uac_load}
modparam("uac", "reg_db_url", "sqlite://{db}")
modparam("uac", "reg_timer_interval", 60)
modparam("uac", "reg_retry_interval", 5)
modparam("uac", "reg_hash_size", {hash_size})
modparam("uac", "reg_contact_addr", "127.0.0.1:{port}")
request_route {{
    sl_send_reply("404", "Not here");
}}
"""


def make_reg_db(path, n, registrar_port, expires=3600):
    sql = [open(os.path.join(SQL_DIR, "standard-create.sql")).read(),
           open(os.path.join(SQL_DIR, "uac-create.sql")).read(), "BEGIN;"]
    for i in range(n):
        sql.append(
            "INSERT INTO uacreg (l_uuid,l_username,l_domain,r_username,r_domain,realm,"
            "auth_username,auth_password,auth_proxy,expires,flags,reg_delay,socket) VALUES "
            f"('u{i}','l{i}','local.test','r{i}','127.0.0.1','bench.example','r{i}',"
            f"'secret','sip:127.0.0.1:{registrar_port}',{expires},0,0,'');")
    sql.append("COMMIT;")
    subprocess.run(["sqlite3", path], input="\n".join(sql), text=True, check=True)


def registered_count(k, n):
    """Records with flag 4 (registered), from `uac.reg_info l_uuid u<i>` for
    every record, in one interactive kamcmd (its replies are limited to
    64 kB, too small for `uac.reg_dump` of thousands of records)."""
    cmds = "".join(f"uac.reg_info l_uuid u{i}\n" for i in range(n))
    try:
        r = subprocess.run(["kamcmd", "-s", f"unix:{k.tmp}/ctl.sock"], input=cmds,
                           capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return 0  # not verified in time: counts as not registered yet
    return sum(1 for m in re.finditer(r"\bflags:\s*(\d+)", r.stdout) if int(m.group(1)) & 4)


def uac_counter(k, name):
    """A `uac` counter (regtotal, regactive...), None while kamcmd cannot answer."""
    out = k.try_kamcmd("cnt.get", "uac", name) or ""
    m = re.fullmatch(r"\s*(-?\d+)\s*", out)
    return int(m.group(1)) if m else None


def registrar_answered(stat_path):
    """REGISTERs the sipp registrar answered so far: SuccessfulCall(C) of the
    last line of its statistics file (each REGISTER is one UAS call)."""
    try:
        with open(stat_path) as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return None
    if len(lines) < 2:
        return None
    head = lines[0].split(";")
    try:
        return int(lines[-1].split(";")[head.index("SuccessfulCall(C)")])
    except (ValueError, IndexError):
        return None


def run_register_once(variant, n, timeout, cycle=0, hash_size=4):
    path = C_UAC if variant == "c" else RUST_UAC
    work = tempfile.mkdtemp(prefix=f"uac-bench-reg-{variant}-{n}-")
    registrar_port = free_port()
    db = os.path.join(work, "uacreg.db")
    expires = cycle or 3600
    make_reg_db(db, n, registrar_port, expires)
    xml = write(os.path.join(work, "registrar.xml"), REGISTRAR_XML.format(expires=expires))
    stat_path = os.path.join(work, "registrar_stat.csv")
    registrar = subprocess.Popen(
        ["sipp", "-sf", xml, "-i", "127.0.0.1", "-p", str(registrar_port), "-nostdin",
         "-buff_size", "8388608", "-trace_stat", "-stf", stat_path, "-fd", "1",
         # Answer a retransmitted REGISTER too: by default sipp silently
         # absorbs messages of a call that ended in the last 33 s, so a lost
         # 200 OK became a 30 s timeout (408) and a retry.
         "-deadcall_wait", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    time.sleep(0.3)
    # pkg: the C module reads the whole uacreg table into one db_sqlite result in
    # pkg memory (100k rows do not fit in 32 MB, 1M not in 256 MB); ours reads
    # 1000 rows at a time and runs with 32 MB at every size.
    pkg = 32 if variant == "rust" else (256 if n <= 100000 else 2048)
    shm = 1024 if n <= 100000 else 4096
    k = None
    keep = True
    try:
        t0 = time.time()
        k = Kamailio(lambda port, peer, tmp: HEADER.format(
            port=port, modules=MODULES, tmp=tmp, children=2, extra_load="", uac_load="")
            + REGISTER_CFG.format(uac_load=f'loadmodule "{path}"', db=db, port=port,
                                  hash_size=hash_size),
            f"register-{variant}-{n}", mem_shm=shm, mem_pkg=pkg)
        t_loaded = None
        t_answered = None
        t_reg = None
        cpu_reg = None
        cpu_answered = None
        deadline = t0 + timeout
        while time.time() < deadline:
            if not k.alive():
                raise BenchError(f"register/{variant}/{n}: a kamailio process died ({k.tmp})")
            if t_loaded is None:
                got = uac_counter(k, "regtotal")
                if got is not None and got >= n:
                    t_loaded = time.time()
                else:
                    time.sleep(0.05)
                    continue
            if t_answered is None:
                got = registrar_answered(stat_path)
                if got is not None and got >= n:
                    t_answered = time.time()
                    cpu_answered = k.cpu_ns()
            # Registered: our counter of records with a 2xx. The C module's
            # regactive is not one (it subtracts 1 per REGISTER sent, in the
            # timer process, and adds 1 per reply of any kind, in a worker: it
            # sums to about 0), so C records are read one by one once the
            # registrar has answered them all.
            if variant == "rust":
                got = uac_counter(k, "regactive")
            elif t_answered is not None:
                got = registered_count(k, n)
            else:
                got = None
            if got is not None and got >= n:
                t_reg = time.time()
                cpu_reg = k.cpu_ns()
                break
            time.sleep(0.05 if n <= 10000 else 0.2)
        if t_loaded is None or t_reg is None:
            raise BenchError(f"register/{variant}/{n}: loaded={t_loaded is not None}, "
                             f"not all registered after {timeout}s "
                             f"({k.tmp})")
        if t_answered is None:
            t_answered, cpu_answered = t_reg, cpu_reg
        if not k.alive():
            raise BenchError(f"register/{variant}/{n}: a kamailio process died ({k.tmp})")
        k.wait_tm_drained(timeout=60)
        time.sleep(1.5)  # a fresh registrar statistics line
        answered = registrar_answered(stat_path) or 0
        shm = k.shm_used()
        res = {"accounts": n, "load_s": t_loaded - t0, "answered_s": t_answered - t0,
               "registered_s": t_reg - t0, "cpu_to_answered_s": cpu_answered / 1e9,
               "extra_registers": answered - n, "shm_used": shm, "pkg_mb": pkg}
        if cycle:
            time.sleep(1.5)  # a fresh statistics line
            cpu0, reg0 = k.cpu_ns(), registrar_answered(stat_path)
            time.sleep(cycle)
            cpu1 = k.cpu_ns()
            time.sleep(1.5)
            reg1 = registrar_answered(stat_path)
            if reg0 is None or reg1 is None or not k.alive():
                raise BenchError(f"register/{variant}/{n}: refresh cycle not measurable "
                                 f"({k.tmp})")
            res.update(cycle_s=cycle, cycle_cpu_s=(cpu1 - cpu0) / 1e9,
                       cycle_registers=reg1 - reg0)
        keep = False
        return res
    finally:
        registrar.terminate()
        registrar.wait()
        if k:
            k.stop(keep=keep)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def run_register(sizes, timeout, cycle=0, hash_size=4, variants=("c", "rust")):
    res = {}
    base = {v: run_register_once(v, 0, 30, hash_size=hash_size)["shm_used"] for v in variants}
    for n in sizes:
        res[n] = {}
        for variant in variants:
            try:
                r = run_register_once(variant, n, timeout, cycle, hash_size)
            except BenchError as e:
                if variant != "c":
                    raise
                # Reported, not fatal: the C module cannot load every size.
                print(f"  register {n} c     FAILED: {e}", file=sys.stderr, flush=True)
                res[n][variant] = {"failed": str(e)}
                continue
            r["shm_per_record"] = (r["shm_used"] - base[variant]) / n
            res[n][variant] = r
            print(f"  register {n} {variant:<5} load {r['load_s']:.2f}s answered "
                  f"{r['answered_s']:.2f}s registered {r['registered_s']:.2f}s "
                  f"cpu {r['cpu_to_answered_s']:.2f}s extra REGISTERs "
                  f"{r['extra_registers']} shm/record {r['shm_per_record']:.0f} B",
                  file=sys.stderr, flush=True)
    return res


def print_register(res, out):
    print("register  (times from Kamailio start: rows loaded (regtotal), every REGISTER "
          "answered by the registrar (its statistics), every record registered (regactive); "
          "CPU of all Kamailio processes until all were answered (C's registered check polls "
          "uac.reg_info, which costs CPU of its own); REGISTERs the registrar got beyond one "
          "per account (retransmissions, retries); shm per record from core.shmmem)", file=out)
    print(f"{'accounts':>9} {'variant':<8} {'load s':>8} {'answered s':>11} "
          f"{'registered s':>13} {'CPU s':>7} {'extra REG':>10} {'shm B/record':>13}", file=out)
    for n, r in res.items():
        for v, x in r.items():
            if "failed" in x:
                print(f"{n:>9} {v:<8} failed: {x['failed']}", file=out)
                continue
            print(f"{n:>9} {v:<8} {x['load_s']:8.2f} {x['answered_s']:11.2f} "
                  f"{x['registered_s']:13.2f} {x['cpu_to_answered_s']:7.2f} "
                  f"{x['extra_registers']:10d} {x['shm_per_record']:13.0f}", file=out)
        c, rust = r.get("c", {}), r.get("rust", {})
        if "load_s" in c and "load_s" in rust:
            print(f"{n:>9} rust/c   {rust['load_s'] / c['load_s']:8.2f} "
                  f"{rust['answered_s'] / c['answered_s']:11.2f} "
                  f"{rust['registered_s'] / c['registered_s']:13.2f} "
                  f"{rust['cpu_to_answered_s'] / c['cpu_to_answered_s']:7.2f} "
                  f"{'':>10} {rust['shm_per_record'] / c['shm_per_record']:13.2f}", file=out)
    cycles = [(n, v, x) for n, r in res.items() for v, x in r.items() if "cycle_s" in x]
    if cycles:
        print("\nrefresh cycle  (registrar grants expires = window; CPU of every Kamailio "
              "process over the window)", file=out)
        print(f"{'accounts':>9} {'variant':<8} {'window s':>9} {'CPU s':>8} "
              f"{'REGISTERs':>10} {'us/REGISTER':>12} {'us/account':>11}", file=out)
        for n, v, x in cycles:
            per_reg = x["cycle_cpu_s"] * 1e6 / max(x["cycle_registers"], 1)
            print(f"{n:>9} {v:<8} {x['cycle_s']:9d} {x['cycle_cpu_s']:8.3f} "
                  f"{x['cycle_registers']:10d} {per_reg:12.1f} "
                  f"{x['cycle_cpu_s'] * 1e6 / n:11.1f}", file=out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="replace,auth,reqsend")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=300, help="calls per variant before measuring")
    ap.add_argument("--callgrind-calls", type=int, default=100,
                    help="calls per variant under callgrind (0: skip)")
    ap.add_argument("--reg-accounts", default="1000,10000")
    ap.add_argument("--reg-100k", action="store_true", help="also 100k accounts")
    ap.add_argument("--reg-hash-size", type=int, default=4,
                    help="reg_hash_size for both modules (default: the module default, 4)")
    ap.add_argument("--reg-variants", default="c,rust",
                    help="register: which modules (c, rust)")
    ap.add_argument("--reg-cycle", type=int, default=0,
                    help="register: also measure CPU over one refresh period of this many "
                         "seconds (the registrar grants it as expires)")
    ap.add_argument("--reg-timeout", type=int, default=300,
                    help="seconds allowed until all accounts are registered")
    ap.add_argument("--mem-manager", choices=["fm", "tlsf"], default=None,
                    help="Kamailio memory manager (-x); default: Kamailio's (q_malloc)")
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "bench.json"))
    args = ap.parse_args()
    global MEM_MANAGER
    MEM_MANAGER = args.mem_manager
    if not os.path.exists(RUST_UAC):
        sys.exit(f"{RUST_UAC} missing: run `make` first")
    results = {}
    started = time.time()
    try:
        for scenario in args.scenarios.split(","):
            if scenario == "register":
                sizes = [int(x) for x in args.reg_accounts.split(",") if x]
                if args.reg_100k:
                    sizes.append(100000)
                results["register"] = run_register(
                    sizes, args.reg_timeout, args.reg_cycle, args.reg_hash_size,
                    tuple(args.reg_variants.split(",")))
                continue
            if scenario not in SCENARIOS:
                sys.exit(f"unknown scenario {scenario}")
            results[scenario] = {}
            if args.rounds > 0:
                samples = run_interleaved(scenario, args.calls, args.rate, args.rounds,
                                          args.warmup)
                for v in VARIANTS:
                    print(f"  {scenario} {v:<8} " + " ".join(f"{x:7.1f}" for x in samples[v])
                          + " us/call", file=sys.stderr, flush=True)
                results[scenario] = summarize(samples)
            if args.callgrind_calls > 0:
                ir = {}
                for variant in VARIANTS:
                    ir[variant], _ = run_callgrind(scenario, variant, args.callgrind_calls)
                    print(f"  {scenario} callgrind {variant:<8} {ir[variant]:10.0f} Ir/call",
                          file=sys.stderr, flush=True)
                results[scenario]["callgrind"] = summarize_ir(ir)
    except BenchError as e:
        print(f"BENCH FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print_table(results)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"calls_per_round": args.calls, "rate": args.rate, "rounds": args.rounds,
                   "warmup": args.warmup, "mem_manager": args.mem_manager or "qm (default)",
                   "callgrind_calls": args.callgrind_calls,
                   "measure": "schedstat on-CPU ns of all kamailio threads / calls",
                   "scenarios": {s: SCENARIOS[s]["doc"] for s in results if s in SCENARIOS},
                   "elapsed_s": time.time() - started, "results": results}, f, indent=2)
    print(f"JSON written to {args.json} ({time.time() - started:.0f}s)")


if __name__ == "__main__":
    main()
