//! The README's quick start, as written, against `examples/kamailio.cfg`
//! started the way `make run` starts it (same `-A` defines, udp:127.0.0.1:5060,
//! kamcmd's default ctl socket): every `$ kamcmd ...` and `$ sipp ...` line of
//! the README's "Quick start" section is run through `sh` in the checkout and
//! its output compared with the lines the README shows, and the Kamailio log
//! lines shown there must appear. Then Rust peers check what the steps do on
//! the wire: the answers for requests to the proxy itself, uac_req_send to the
//! X-Send-To URI, and a call out through a registered account.
//!
//! Port 5060, 5070 (the README's registrar) and the default ctl socket are
//! fixed, so this file holds one test and no other test may use them.

mod common;
mod reg_support;

use std::fs;
use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kamailio::{DEFAULT_CTL, KAMCMD, Kamailio, MODULES_DIR, our_uac, temp_dir};
use common::peer::{RegistrarConfig, UdpPeer, WAIT};
use common::sip::Request;
use reg_support::RegDb;

/// What the example listens on, and the README's registrar.
const SIP_PORT: u16 = 5060;
const REGISTRAR_PORT: u16 = 5070;

/// `kamcmd` fields whose values change from run to run (times).
const VARIABLE_FIELDS: [&str; 3] = ["diff_expires", "timer_expires", "reg_init"];

/// One `$ command` of the README and the output lines shown under it.
#[derive(Debug)]
struct Step {
    /// 1-based line in README.md.
    line: usize,
    cmd: String,
    expected: Vec<String>,
}

/// The "## Quick start" section of the README, with the line number it starts on.
fn quick_start(readme: &str) -> (usize, Vec<&str>) {
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("## Quick start"))
        .expect("README has no \"## Quick start\" section");
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |n| start + 1 + n);
    (start + 1, lines[start..end].to_vec())
}

/// The `$ ` lines inside code blocks, each with the lines up to the next `$ `
/// line or the end of the block.
fn steps(first_line: usize, section: &[&str]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut in_block = false;
    let mut current: Option<Step> = None;
    for (i, l) in section.iter().enumerate() {
        if l.starts_with("```") {
            in_block = !in_block;
            out.extend(current.take());
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = l.strip_prefix("$ ") {
            out.extend(current.take());
            current = Some(Step {
                line: first_line + i,
                cmd: cmd.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(step) = current.as_mut() {
            step.expected.push(l.to_string());
        }
    }
    out
}

fn normalize(l: &str) -> String {
    l.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether an output line matches a README line: equal but for runs of
/// blanks, or a time field (`VARIABLE_FIELDS`) with any number.
fn line_matches(expected: &str, actual: &str) -> bool {
    let (e, a) = (normalize(expected), normalize(actual));
    if e == a {
        return true;
    }
    match (e.split_once(": "), a.split_once(": ")) {
        (Some((ek, _)), Some((ak, av))) => {
            ek == ak && VARIABLE_FIELDS.contains(&ek) && av.parse::<u64>().is_ok()
        }
        _ => false,
    }
}

/// Matches the output against the README's lines: in order, line for line;
/// `...` stands for any number of lines. Err says where it differs.
fn output_matches(expected: &[String], actual: &str) -> Result<(), String> {
    let actual: Vec<&str> = actual.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut pos = 0;
    let mut skipping = false;
    for e in expected.iter().filter(|l| !l.trim().is_empty()) {
        if e.trim() == "..." {
            skipping = true;
            continue;
        }
        let found = if skipping {
            actual[pos..]
                .iter()
                .position(|a| line_matches(e, a))
                .map(|n| pos + n)
        } else {
            (pos < actual.len() && line_matches(e, actual[pos])).then_some(pos)
        };
        match found {
            Some(n) => pos = n + 1,
            None => return Err(format!("no line matching {e:?} (after line {pos})")),
        }
        skipping = false;
    }
    if !skipping && pos < actual.len() {
        return Err(format!("unexpected line {:?}", actual[pos]));
    }
    Ok(())
}

/// A shell command of the README, in its own process group so that a timeout
/// or the end of the test stops it and what it started.
struct Shell {
    child: Child,
}

impl Shell {
    fn spawn(root: &Path, cmd: &str, out: Stdio, err: Stdio) -> Shell {
        let child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(root)
            // kamcmd and sipp live in /usr/sbin and /usr/bin.
            .env(
                "PATH",
                format!(
                    "/usr/sbin:/usr/bin:/sbin:/bin:{}",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("sh -c {cmd:?}: {e}"));
        Shell { child }
    }

    /// Runs to completion (at most 30 s): exit code, stdout, stderr.
    fn run(root: &Path, cmd: &str) -> (Option<i32>, String, String) {
        let tmp = temp_dir("qs-sh");
        let (o, e) = (tmp.join("out"), tmp.join("err"));
        let mut sh = Shell::spawn(
            root,
            cmd,
            fs::File::create(&o).expect("out").into(),
            fs::File::create(&e).expect("err").into(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(st) = sh.child.try_wait().expect("wait") {
                break st.code();
            }
            if Instant::now() > deadline {
                sh.stop();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
        let res = (code, read(&o), read(&e));
        let _ = fs::remove_dir_all(&tmp);
        res
    }

    /// SIGINT to the group (sipp prints its final screen), then SIGKILL.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group of our own child.
        unsafe { libc::kill(-pgid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether something listens on 127.0.0.1:`port` (UDP).
fn udp_port_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// Runs one README step and compares its output. A sipp step must exit with
/// 0. A kamcmd step that shows output is repeated for up to 5 s until it
/// matches (registering takes a few round trips).
fn run_step(root: &Path, step: &Step) {
    let is_kamcmd = step.cmd.starts_with("kamcmd ");
    let retry = is_kamcmd && step.expected.iter().any(|l| !l.trim().is_empty());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, out, err) = Shell::run(root, &step.cmd);
        let checked = if !is_kamcmd && code != Some(0) {
            Err(format!("exit status {code:?}"))
        } else {
            output_matches(&step.expected, &out)
        };
        match checked {
            Ok(()) => return,
            Err(why) if !retry || Instant::now() > deadline => panic!(
                "README.md line {}: `{}` does not do what the README shows: {why}\n\
                 --- README shows ---\n{}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                step.line,
                step.cmd,
                step.expected.join("\n"),
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn readme_quick_start_against_the_example_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let (first_line, section) = quick_start(&readme);
    let steps = steps(first_line, &section);
    for needle in [
        "sipp -sf examples/sipp/options.xml -s ping ",
        "sipp -sf examples/sipp/registrar.xml ",
        "kamcmd uac.reg_add ",
        "kamcmd uac.reg_info ",
        "kamcmd uac.reg_dump",
        "sipp -sf examples/sipp/options.xml -s send ",
    ] {
        assert!(
            steps.iter().any(|s| s.cmd.starts_with(needle)),
            "the quick start lost its `{needle}...` step: {steps:#?}"
        );
    }
    assert!(
        !udp_port_taken(SIP_PORT) && !udp_port_taken(REGISTRAR_PORT),
        "127.0.0.1:{SIP_PORT} or :{REGISTRAR_PORT} is in use (a `make run`?): stop it first"
    );
    assert!(
        !Command::new(KAMCMD)
            .args(["-s", DEFAULT_CTL, "core.uptime"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "a Kamailio answers on {DEFAULT_CTL} (a `make run`?): stop it first"
    );

    // `make run`: mkdir -p /var/run/kamailio; kamailio -DD -E -f
    // examples/kamailio.cfg -Y run -A UACREG_DB_URL=... -A UAC_MPATH=...
    fs::create_dir_all("/var/run/kamailio").expect("mkdir /var/run/kamailio");
    let db = RegDb::new();
    let tmp = temp_dir("quickstart");
    let module_dir = our_uac()
        .parent()
        .expect("module dir")
        .display()
        .to_string();
    let args: Vec<String> = vec![
        "-f".into(),
        "examples/kamailio.cfg".into(),
        "-Y".into(),
        tmp.display().to_string(),
        "-A".into(),
        format!("UACREG_DB_URL=\"{}\"", db.url()),
        "-A".into(),
        format!("UAC_MPATH=\"{module_dir}/:{MODULES_DIR}/\""),
    ];
    let k = Kamailio::start_args(root, &args, SIP_PORT, DEFAULT_CTL, tmp);

    // The README's steps, in order.
    let mut background = Vec::new();
    for step in &steps {
        if step.cmd.contains("examples/sipp/registrar.xml") {
            // "start it in a third terminal and leave it running"
            background.push(Shell::spawn(root, &step.cmd, Stdio::null(), Stdio::null()));
            let deadline = Instant::now() + Duration::from_secs(5);
            while !udp_port_taken(REGISTRAR_PORT) {
                assert!(
                    Instant::now() < deadline,
                    "README.md line {}: `{}` did not bind port {REGISTRAR_PORT}",
                    step.line,
                    step.cmd
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        } else if step.cmd.starts_with("kamcmd ") || step.cmd.starts_with("sipp ") {
            run_step(root, step);
        } else {
            panic!(
                "README.md line {}: this test does not know how to run `{}`",
                step.line, step.cmd
            );
        }
    }

    // The Kamailio log lines the README shows (the Call-ID differs).
    let log_lines: Vec<&str> = section
        .iter()
        .filter_map(|l| l.split_once("INFO: <script>: ").map(|(_, t)| t))
        .map(|t| t.split(" for call ").next().unwrap_or(t))
        .collect();
    assert!(log_lines.len() >= 2, "the quick start shows no log lines");
    for l in log_lines {
        k.wait_log(l, WAIT);
    }
    drop(background);

    // Requests for the proxy itself: ping 200, others as a proxy answers
    // them (before issue 13 these looped until 483 Too Many Hops).
    let client = UdpPeer::bind().named("client").with_target(k.addr());
    let sent = client.send(Request::new("OPTIONS", "sip:ping@127.0.0.1:5060"));
    let r = client.expect_response_to(&sent, 200, WAIT);
    assert_eq!(r.reason(), "OK");
    let sent = client.send(Request::new("MESSAGE", "sip:nobody@127.0.0.1:5060"));
    client.expect_response_to(&sent, 404, WAIT);
    let sent = client.send(Request::new("REGISTER", "sip:127.0.0.1:5060"));
    let r = client.expect_response_to(&sent, 405, WAIT);
    assert!(r.hdr("Allow").contains("OPTIONS"), "{r}");

    // uac_req_send to the X-Send-To URI; the event route logs the reply.
    let uas = UdpPeer::bind().named("uas");
    let target = uas.uri("bob");
    let sent = client
        .send(Request::new("OPTIONS", "sip:send@127.0.0.1:5060").header("X-Send-To", &target));
    client.expect_response_to(&sent, 200, WAIT);
    let req = uas.expect_request("OPTIONS", WAIT);
    assert_eq!(req.ruri(), target);
    assert_eq!(req.from_uri(), "sip:uac@127.0.0.1:5060");
    uas.reply(&req, 200, "OK", &[]);
    k.wait_log(
        &format!(
            "uac_req_send: OPTIONS to {target} answered 200 (evtype 1, for call {})",
            sent.call_id()
        ),
        WAIT,
    );

    // A second account, on a Rust registrar: digest checked, then a request
    // for its l_uuid leaves with the AoR as R-URI and From, and the caller
    // gets its own From back.
    let registrar = RegistrarConfig::new("sip.example.test", "1000", "secret").start();
    let proxy = registrar.uri();
    let out = k.kamcmd(&[
        "uac.reg_add",
        "peer",
        "bob",
        "127.0.0.1",
        "1000",
        "sip.example.test",
        "sip.example.test",
        "1000",
        "secret",
        ".",
        &proxy,
        "600",
        "0",
        "0",
        ".",
        ".",
    ]);
    assert_eq!(out.trim(), "");
    let regs = registrar.wait_registers(2, WAIT);
    assert_eq!(regs[0].reply, Some(401));
    assert_eq!(regs[1].auth, Some(Ok(())), "{}", registrar.log_text());
    assert_eq!(regs[1].reply, Some(200));
    assert_eq!(
        regs[1].msg.contact_uri().as_deref(),
        Some("sip:peer@127.0.0.1:5060")
    );
    let sent =
        client.send(Request::new("OPTIONS", "sip:peer@127.0.0.1:5060").from("sip:carol@127.0.0.1"));
    let r = client.expect_response_to(&sent, 200, WAIT);
    assert_eq!(r.from_uri(), "sip:carol@127.0.0.1", "From restored: {r}");
    let out_req = registrar
        .server()
        .wait_requests("OPTIONS", 1, WAIT)
        .remove(0);
    assert_eq!(out_req.ruri(), "sip:1000@sip.example.test");
    assert_eq!(out_req.from_uri(), "sip:1000@sip.example.test");
    assert!(k.is_running());
}
