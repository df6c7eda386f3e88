//! A real `kamailio` process for one test: generated config, its own temp
//! dir, ports and ctl socket; killed and reaped on drop, with its log printed
//! when the test failed.

use std::fs;
use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const KAMAILIO: &str = "/usr/sbin/kamailio";
pub const KAMCMD: &str = "/usr/sbin/kamcmd";
pub const MODULES_DIR: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";
/// The socket `kamcmd` connects to without `-s` (Debian's build).
pub const DEFAULT_CTL: &str = "unix:/var/run/kamailio//kamailio_ctl";

/// Our module: `target/uac.so` (built by `make`), or `UAC_SO`.
pub fn our_uac() -> PathBuf {
    if let Ok(p) = std::env::var("UAC_SO") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("uac.so");
    assert!(p.exists(), "{} missing: run `make` first", p.display());
    p
}

/// The release of the Kamailio under test, `(major, minor, patch)`, from the
/// `version:` line of `kamailio -V`: tests of behaviour that differs between
/// releases ask it instead of assuming one.
pub fn kamailio_version() -> (u32, u32, u32) {
    static VERSION: std::sync::OnceLock<(u32, u32, u32)> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new(KAMAILIO)
            .arg("-V")
            .output()
            .expect("run kamailio -V");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "version: kamailio 5.6.3 (x86_64/linux)"
        let number = text
            .lines()
            .find_map(|l| l.strip_prefix("version: "))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no version line in `kamailio -V`:\n{text}"));
        let mut parts = number
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        (next(), next(), next())
    })
}

/// Debian's C module, the reference.
pub fn c_uac() -> PathBuf {
    Path::new(MODULES_DIR).join("uac.so")
}

/// A free UDP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh temp dir for one Kamailio.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("uac-test-{}-{}-{}", std::process::id(), tag, n));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Builds the config text around a test's module params and routes.
///
/// Placeholders replaced in `body`: `{UAC}` (module path), `{PORT}`,
/// `{TMP}` (temp dir), `{MODULES}`.
pub struct Config {
    pub uac: PathBuf,
    /// Extra core settings and `loadmodule` lines before uac.
    pub pre: String,
    /// modparams and routes.
    pub body: String,
    pub children: u32,
    pub debug: i32,
    pub load_rr: bool,
    /// Shared memory in MB (`-m`).
    pub shm_mb: u32,
}

impl Config {
    pub fn new(body: &str) -> Config {
        Config {
            uac: our_uac(),
            pre: String::new(),
            body: body.to_string(),
            children: 2,
            debug: 2,
            load_rr: true,
            shm_mb: 64,
        }
    }

    /// Uses Debian's C uac.so instead of ours.
    pub fn with_c_module(mut self) -> Config {
        self.uac = c_uac();
        self
    }

    pub fn pre(mut self, pre: &str) -> Config {
        self.pre.push_str(pre);
        self.pre.push('\n');
        self
    }

    /// Leaves the rr module out.
    pub fn without_rr(mut self) -> Config {
        self.load_rr = false;
        self
    }

    pub fn children(mut self, n: u32) -> Config {
        self.children = n;
        self
    }

    pub fn shm_mb(mut self, mb: u32) -> Config {
        self.shm_mb = mb;
        self
    }

    pub fn debug(mut self, level: i32) -> Config {
        self.debug = level;
        self
    }

    fn render(&self, port: u16, tmp: &Path) -> String {
        let subst = |s: &str| {
            s.replace("{UAC}", &self.uac.display().to_string())
                .replace("{PORT}", &port.to_string())
                .replace("{TMP}", &tmp.display().to_string())
                .replace("{MODULES}", MODULES_DIR)
        };
        format!(
            "#!KAMAILIO\n\
             debug={debug}\nlog_stderror=yes\nmemdbg=5\nmemlog=5\n\
             children={children}\nauto_aliases=no\n\
             listen=udp:127.0.0.1:{port}\n\
             mpath=\"{MODULES_DIR}/\"\n\
             loadmodule \"ctl.so\"\n\
             modparam(\"ctl\", \"binrpc\", \"unix:{tmp}/ctl.sock\")\n\
             loadmodule \"tm.so\"\nloadmodule \"sl.so\"\n{rr}\
             loadmodule \"pv.so\"\nloadmodule \"xlog.so\"\nloadmodule \"textops.so\"\n\
             loadmodule \"siputils.so\"\nloadmodule \"maxfwd.so\"\n\
             {pre}\n\
             loadmodule \"{uac}\"\n\
             {body}\n",
            debug = self.debug,
            children = self.children,
            tmp = tmp.display(),
            rr = if self.load_rr {
                "loadmodule \"rr.so\"\n"
            } else {
                ""
            },
            pre = subst(&self.pre),
            uac = self.uac.display(),
            body = subst(&self.body),
        )
    }
}

/// Result of `kamailio -c` on a config.
pub struct CheckResult {
    pub ok: bool,
    pub output: String,
}

/// Runs `kamailio -c` (parse the config, load modules) without starting.
/// Note: mod_init runs only at start, so use [`Kamailio::start_expect_failure`]
/// for checks done in mod_init.
pub fn check_config(cfg: &Config) -> CheckResult {
    let tmp = temp_dir("check");
    let path = tmp.join("kamailio.cfg");
    fs::write(&path, cfg.render(free_port(), &tmp)).expect("write cfg");
    let out = Command::new(KAMAILIO)
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .expect("run kamailio -c");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let _ = fs::remove_dir_all(&tmp);
    CheckResult {
        ok: out.status.success(),
        output,
    }
}

/// A running Kamailio.
pub struct Kamailio {
    child: Mutex<Option<Child>>,
    exited: Mutex<Option<ExitStatus>>,
    pub port: u16,
    pub tmp: PathBuf,
    /// The binrpc socket kamcmd reaches it on (`-s`).
    ctl: String,
    log_path: PathBuf,
    cfg_text: String,
}

impl Kamailio {
    /// Starts Kamailio and waits until its ctl socket answers.
    pub fn start(cfg: Config) -> Kamailio {
        Self::spawn(cfg).wait_up()
    }

    /// Starts `kamailio -DD -E <args>` in `dir` on a config file of the
    /// repository instead of a generated one (examples/kamailio.cfg, as
    /// `make run` does), and waits until `ctl` answers. `port` is the SIP port
    /// the config listens on, `ctl` the binrpc socket it opens. The log goes
    /// to `tmp`, which is removed on drop unless the test failed.
    pub fn start_args(dir: &Path, args: &[String], port: u16, ctl: &str, tmp: PathBuf) -> Kamailio {
        let cfg_text = args
            .iter()
            .position(|a| a == "-f")
            .and_then(|i| args.get(i + 1))
            .and_then(|f| fs::read_to_string(dir.join(f)).ok())
            .unwrap_or_default();
        Self::spawn_args(Some(dir), args, port, ctl.to_string(), tmp, cfg_text).wait_up()
    }

    fn wait_up(self) -> Kamailio {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.try_kamcmd(&["core.uptime"]).is_ok() {
                return self;
            }
            if let Some(st) = self.exit_status() {
                panic!("kamailio exited during start-up ({st}):\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("kamailio did not come up in 20 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts Kamailio expecting it to refuse to start; returns its log.
    pub fn start_expect_failure(cfg: Config) -> String {
        let k = Self::spawn(cfg);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if k.exit_status().is_some() {
                return k.log();
            }
            if k.try_kamcmd(&["core.uptime"]).is_ok() {
                panic!(
                    "kamailio started although it should have refused:\n{}",
                    k.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("kamailio neither started nor exited in 20 s:\n{}", k.log());
    }

    fn spawn(cfg: Config) -> Kamailio {
        let port = free_port();
        let tmp = temp_dir("run");
        let cfg_text = cfg.render(port, &tmp);
        let cfg_path = tmp.join("kamailio.cfg");
        fs::write(&cfg_path, &cfg_text).expect("write cfg");
        let shm = cfg.shm_mb.to_string();
        let mut args: Vec<String> = ["-m", &shm, "-M", "8", "-f"].map(String::from).into();
        args.push(cfg_path.display().to_string());
        args.push("-Y".into());
        args.push(tmp.display().to_string());
        let ctl = format!("unix:{}/ctl.sock", tmp.display());
        Self::spawn_args(None, &args, port, ctl, tmp, cfg_text)
    }

    /// `kamailio -DD -E <args>`, in `dir` if given (else in the test's own).
    fn spawn_args(
        dir: Option<&Path>,
        args: &[String],
        port: u16,
        ctl: String,
        tmp: PathBuf,
        cfg_text: String,
    ) -> Kamailio {
        let log_path = tmp.join("kamailio.log");
        let log = fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(KAMAILIO);
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let child = cmd
            .args(["-DD", "-E"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn kamailio");
        Kamailio {
            child: Mutex::new(Some(child)),
            exited: Mutex::new(None),
            port,
            tmp,
            ctl,
            log_path,
            cfg_text,
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        let mut exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        if exited.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Ok(Some(st))) = child.as_mut().map(|c| c.try_wait()) {
                *exited = Some(st);
            }
        }
        *exited
    }

    /// The SIP address Kamailio listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().expect("addr")
    }

    /// Everything Kamailio logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            let mut b = Vec::new();
            let _ = f.read_to_end(&mut b);
            s = String::from_utf8_lossy(&b).into_owned();
        }
        s
    }

    /// Waits until the log contains `needle`; panics after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("log never contained {needle:?} within {timeout:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn ctl(&self) -> &str {
        &self.ctl
    }

    /// Runs `kamcmd` against this instance; Err carries the error output.
    pub fn try_kamcmd(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(KAMCMD)
            .arg("-s")
            .arg(self.ctl())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() && !stdout.starts_with("error:") {
            Ok(stdout)
        } else {
            Err(format!("{stdout}{stderr}"))
        }
    }

    /// Runs `kamcmd`, panicking on failure.
    pub fn kamcmd(&self, args: &[&str]) -> String {
        self.try_kamcmd(args)
            .unwrap_or_else(|e| panic!("kamcmd {args:?} failed: {e}"))
    }

    /// Used shared memory in bytes (`core.shmmem` used).
    pub fn shm_used(&self) -> u64 {
        let out = self.kamcmd(&["core.shmmem"]);
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("used:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or_else(|| panic!("no used: in core.shmmem output: {out}"))
    }

    /// Whether the main process is still alive.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Counts Kamailio processes still alive (main + children), via kamcmd.
    pub fn process_count(&self) -> usize {
        self.kamcmd(&["core.psx"]).matches("PID:").count()
    }

    /// The rendered config, for failure messages.
    pub fn config_text(&self) -> &str {
        &self.cfg_text
    }

    /// Kills Kamailio as a crash would: SIGKILL to the main process and every process
    /// it forked (found through /proc), so nothing is left to answer or to clean up.
    pub fn kill_hard(&mut self) {
        let taken = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut child) = taken else { return };
        let main = child.id() as libc::pid_t;
        let mut pids = vec![main];
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<libc::pid_t>().ok())
                else {
                    continue;
                };
                // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
                let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                    continue;
                };
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<libc::pid_t>().ok());
                if ppid == Some(main) {
                    pids.push(pid);
                }
            }
        }
        for pid in pids {
            // SAFETY: signalling our own child and its children.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = child.wait();
    }

    /// Stops Kamailio (TERM, then KILL) and reaps it.
    pub fn stop(&mut self) {
        let taken = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut child) = taken else { return };
        let pid = child.id() as libc::pid_t;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("===== kamailio config =====\n{}", self.cfg_text);
            eprintln!(
                "===== kamailio log ({}) =====\n{}",
                self.log_path.display(),
                self.log()
            );
        } else {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}
