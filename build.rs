//! Build script: bindgen over Kamailio's headers and the C glue, with the
//! installed Kamailio's own `-D` set so struct layouts match its binaries.
//!
//! Inputs (each also a rerun trigger):
//! - `KAMAILIO_SRC`: the `src/` folder of the Kamailio source tree; default
//!   `.kamailio-src/kamailio-<version>/src`, or the nearest patch release of
//!   the same `major.minor` there. `scripts/setup.sh` fetches it (the Debian
//!   source of the installed version, or an earlier patch release's upstream
//!   tarball where the archive has none); `make setup` runs that script, and
//!   `make build` runs `make setup` first.
//! - `KAMAILIO` (or `KAMAILIO_BIN`): the Kamailio binary whose `-V` gives the
//!   version, OS string and flags; default `/usr/sbin/kamailio`.
//!
//! Emits a `kamailio_ge_X_Y` cfg for each release in [`RELEASE_CFGS`] the
//! installed Kamailio has reached: where the host API differs in a way that
//! type-generic code cannot absorb.
//!
//! With the default feature `kamailio` off (unit tests of the pure logic) this
//! does nothing, so `cargo test --no-default-features` needs no Kamailio.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const KAMAILIO_LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu/kamailio";
/// A module of the installed Kamailio, whose `module_flags` is the reference.
const REFERENCE_MODULE: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/tm.so";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KAMAILIO_SRC");
    println!("cargo:rerun-if-env-changed=KAMAILIO_BIN");
    println!("cargo:rerun-if-env-changed=KAMAILIO");
    for (major, minor) in RELEASE_CFGS {
        println!("cargo::rustc-check-cfg=cfg(kamailio_ge_{major}_{minor})");
    }
    if env::var_os("CARGO_FEATURE_KAMAILIO").is_none() {
        return;
    }
    let bin = env::var("KAMAILIO_BIN")
        .or_else(|_| env::var("KAMAILIO"))
        .unwrap_or_else(|_| "/usr/sbin/kamailio".into());
    let mut host = HostInfo::probe(&bin);
    host.adopt_shipped_module_flags();
    let (major, minor, _) = split_version(&host.version);
    let src = locate_source(&host.version);
    check_source_version(&src, &host.version);
    let defines = host.defines();

    for (want_major, want_minor) in RELEASE_CFGS {
        if (major, minor) >= (want_major, want_minor) {
            println!("cargo:rustc-cfg=kamailio_ge_{want_major}_{want_minor}");
        }
    }
    generate_bindings(&src, &defines);
    // The DB API is resolved at run time (kamailio-glue/db.c): up to 5.x
    // from libsrdb1, from 6.0 from the core. No link-time dependency, so a
    // module built for another release reaches the core's version check.
    let mut glue_defines = defines.clone();
    glue_defines.push((
        "KSR_RS_SRDB1_PATH".into(),
        Some(format!("\"{KAMAILIO_LIB_DIR}/libsrdb1.so.1\"")),
    ));
    compile_glue(&src, &glue_defines);
    check_compile_flags(&src, &defines, &host.compile_flags);
}

/// Releases whose host API the Rust code tells apart: 6.1 (tm's per-request
/// `fr_timeout`/`fr_inv_timeout` in `uac_req_t`). Add one only with its user.
const RELEASE_CFGS: [(u32, u32); 1] = [(6, 1)];

/// What `kamailio -V` says about the installed core.
struct HostInfo {
    version: String,
    arch: String,
    os: String,
    /// Names from the `flags:` line, as printed.
    flags: Vec<String>,
    adaptive_wait_loops: Option<String>,
    /// The flags line verbatim: must equal our SER_COMPILE_FLAGS.
    compile_flags: String,
}

impl HostInfo {
    fn probe(bin: &str) -> HostInfo {
        let out = Command::new(bin)
            .arg("-V")
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{bin} -V` ({e}): install kamailio first"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut version = None;
        let mut arch = String::from("x86_64");
        let mut os = String::from("linux");
        let mut flags = Vec::new();
        let mut compile_flags = String::new();
        let mut adaptive_wait_loops = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("version: ") {
                // "kamailio 5.6.3 (x86_64/linux) "
                let mut parts = rest.split_whitespace();
                let _name = parts.next();
                version = parts.next().map(str::to_owned);
                if let Some(ao) = parts.next() {
                    let ao = ao.trim_matches(|c| c == '(' || c == ')');
                    if let Some((a, o)) = ao.split_once('/') {
                        arch = a.to_owned();
                        os = o.to_owned();
                    }
                }
            } else if let Some(rest) = line.strip_prefix("flags: ") {
                compile_flags = rest.trim_end().to_owned();
                flags = rest
                    .split(',')
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect();
            } else if line.starts_with("ADAPTIVE_WAIT_LOOPS") {
                adaptive_wait_loops = line
                    .split(',')
                    .next()
                    .and_then(|f| f.split_whitespace().nth(1))
                    .map(str::to_owned);
            }
        }
        let version = version.unwrap_or_else(|| panic!("`{bin} -V` printed no version line"));
        HostInfo {
            version,
            arch,
            os,
            flags,
            adaptive_wait_loops,
            compile_flags,
        }
    }

    /// `kamailio -V` can print more flags than the core's module check
    /// compares: Debian's 6.1 (a CMake build) lists DBG_QM_MALLOC,
    /// DBG_F_MALLOC and DBG_TLSF_MALLOC, which the memory headers derive from
    /// DBG_SR_MEMORY in some compile units but not in the one that checks
    /// modules. The `module_flags` of a module the installed Kamailio ships
    /// (tm.so) is exactly what that check accepts: when it is found, its
    /// flags are the ones we compile with and must reproduce.
    fn adopt_shipped_module_flags(&mut self) {
        let path =
            env::var("KAMAILIO_REFERENCE_MODULE").unwrap_or_else(|_| REFERENCE_MODULE.into());
        println!("cargo:rerun-if-env-changed=KAMAILIO_REFERENCE_MODULE");
        let Ok(bytes) = std::fs::read(&path) else {
            println!("cargo:warning={path} not readable: module flags taken from `kamailio -V`");
            return;
        };
        let shipped = bytes
            .split(|&b| b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok())
            .find(|s| {
                let tokens: Vec<&str> = s.split(", ").collect();
                tokens.len() >= 5 && tokens.iter().all(|t| self.flags.iter().any(|f| f == t))
            });
        match shipped {
            Some(flags) => {
                self.flags = flags.split(", ").map(str::to_owned).collect();
                self.compile_flags = flags.to_owned();
            }
            None => panic!(
                "no module_flags string made of `kamailio -V`'s flags in {path}: is it a module of \
                 the installed Kamailio {}?",
                self.version
            ),
        }
    }

    /// The `-D` set both bindgen and cc see.
    fn defines(&self) -> Vec<(String, Option<String>)> {
        let mut d: Vec<(String, Option<String>)> = Vec::new();
        for f in &self.flags {
            match f.as_str() {
                "FAST_LOCK-ADAPTIVE_WAIT" => {
                    d.push(("FAST_LOCK".into(), None));
                    d.push(("ADAPTIVE_WAIT".into(), None));
                }
                "TLS_PTHREAD_MUTEX_SHARED" => d.push(("KSR_PTHREAD_MUTEX_SHARED".into(), None)),
                other => d.push((other.into(), None)),
            }
        }
        if let Some(loops) = &self.adaptive_wait_loops {
            d.push(("ADAPTIVE_WAIT_LOOPS".into(), Some(loops.clone())));
        }
        let (major, minor, patch) = split_version(&self.version);
        let quoted = |s: &str| Some(format!("\"{s}\""));
        d.push(("NAME".into(), quoted("kamailio")));
        d.push(("VERSION".into(), quoted(&self.version)));
        d.push(("ARCH".into(), quoted(&self.arch)));
        // Makefile builds print `linux` and define OS=linux_; CMake builds
        // (6.1 on Debian) print `Linux` and define OS=Linux.
        let os_macro = if self.os.chars().all(|c| c.is_ascii_lowercase()) {
            format!("{}_", self.os)
        } else {
            self.os.clone()
        };
        d.push(("OS".into(), Some(os_macro)));
        d.push(("OS_QUOTED".into(), quoted(&self.os)));
        d.push((format!("__CPU_{}", self.arch), None));
        d.push((format!("__OS_{}", self.os.to_ascii_lowercase()), None));
        d.push((
            "VERSIONVAL".into(),
            Some(format!("{}", major * 1_000_000 + minor * 1000 + patch)),
        ));
        d.push(("MOD_NAME".into(), quoted("uac")));
        // Makefile.defs defaults that `-V` does not print.
        for name in [
            "WITH_XAVP",
            "MEM_JOIN_FREE",
            "USE_CORE_STATS",
            "STATISTICS",
            "MALLOC_STATS",
            "CC_GCC_LIKE_ASM",
            "HAVE_GETHOSTBYNAME2",
            "HAVE_UNION_SEMUN",
            "HAVE_SCHED_YIELD",
            "HAVE_MSG_NOSIGNAL",
            "HAVE_MSGHDR_MSG_CONTROL",
            "HAVE_ALLOCA_H",
            "HAVE_TIMEGM",
            "HAVE_SCHED_SETSCHEDULER",
            "HAVE_IP_MREQN",
            "HAVE_EPOLL",
            "HAVE_SIGIO_RT",
            "SIGINFO64_WORKARROUND",
            "HAVE_SELECT",
        ] {
            d.push((name.into(), None));
        }
        d
    }
}

fn split_version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// The headers: `KAMAILIO_SRC`, else `.kamailio-src/kamailio-<version>`, else
/// the highest patch release of the same `major.minor` found there (Debian's
/// archive does not always serve the source of the binary it ships).
fn locate_source(version: &str) -> PathBuf {
    let src = match env::var("KAMAILIO_SRC") {
        Ok(s) => PathBuf::from(s),
        Err(_) => {
            let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"))
                .join(".kamailio-src");
            println!("cargo:rerun-if-changed={}", root.display());
            let exact = root.join(format!("kamailio-{version}")).join("src");
            if exact.join("core").join("sr_module.h").exists() {
                exact
            } else {
                nearest_patch_release(&root, version).unwrap_or(exact)
            }
        }
    };
    if !src.join("core").join("sr_module.h").exists() {
        panic!(
            "Kamailio {version} headers not found at {}: run `scripts/setup.sh` (fetches the \
             Debian source package) or set KAMAILIO_SRC to the source tree's src/ folder",
            src.display()
        );
    }
    println!(
        "cargo:rerun-if-changed={}",
        src.join("Makefile.defs").display()
    );
    src
}

fn nearest_patch_release(root: &Path, version: &str) -> Option<PathBuf> {
    let (major, minor, _) = split_version(version);
    let prefix = format!("kamailio-{major}.{minor}.");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let patch = name.strip_prefix(&prefix)?.parse::<u32>().ok()?;
            let src = e.path().join("src");
            src.join("core")
                .join("sr_module.h")
                .exists()
                .then_some((patch, src))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, src)| src)
}

/// The headers must be those of the running core's release series, or
/// layouts drift. Another patch release of the same `major.minor` may stand
/// in (with a warning) when the archive lacks the exact source; that is not a
/// promise of equal layouts (Debian's 6.1.5 tm grew `struct ua_client` over
/// 6.1.4's headers), so what the module reads of tm's structs is checked at
/// run time (host/tm/failure.rs, host/api.rs). The version and flags strings
/// always come from the binary.
fn check_source_version(src: &Path, version: &str) {
    let defs = std::fs::read_to_string(src.join("Makefile.defs")).unwrap_or_default();
    let value = |key: &str| {
        defs.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key)
                .then(|| v.trim().parse::<u32>().ok())
                .flatten()
        })
    };
    let (major, minor, patch) = split_version(version);
    let found = (value("VERSION"), value("PATCHLEVEL"), value("SUBLEVEL"));
    if found.0 != Some(major) || found.1 != Some(minor) {
        panic!(
            "{}/Makefile.defs is not of the Kamailio {major}.{minor} series: the headers are not \
             those of the installed Kamailio {version}",
            src.display()
        );
    }
    if found.2 != Some(patch) {
        println!(
            "cargo:warning=Kamailio {version} is built against the headers of {major}.{minor}.{} \
             ({}): same release series",
            found.2.unwrap_or(0),
            src.display()
        );
    }
}

fn clang_define_args(defines: &[(String, Option<String>)]) -> Vec<String> {
    defines
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("-D{k}={v}"),
            None => format!("-D{k}"),
        })
        .collect()
}

fn generate_bindings(src: &Path, defines: &[(String, Option<String>)]) {
    println!("cargo:rerun-if-changed=include/kamailio_wrapper.h");
    println!("cargo:rerun-if-changed=include/ksr_rs_glue.h");
    let mut args = clang_define_args(defines);
    args.push(format!("-I{}", src.display()));
    args.push("-Iinclude".into());
    let b = bindgen::Builder::default()
        .header("include/kamailio_wrapper.h")
        .clang_args(&args)
        .rust_edition(bindgen::RustEdition::Edition2024)
        .wrap_unsafe_ops(true)
        .layout_tests(true)
        .derive_default(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // The surface we use, kept reviewable.
        .allowlist_function("ksr_rs_.*")
        .allowlist_type("module_exports")
        .allowlist_type("cmd_export_t|param_export_t|pv_export_t|rpc_export_t|rpc_t")
        .allowlist_type("sr_kemi_t|sr_kemi_val_t|sr_kemi_xval_t")
        .allowlist_type("sip_msg_t|sip_msg|hdr_field_t|to_body|to_body_t|struct_hdr_types")
        .allowlist_type("pv_spec_t|pv_value_t|pv_param_t|pv_elem_t|gparam_t|fparam_t")
        .allowlist_type("tm_binds|rr_binds|dlg_binds|tm_cell_t|tmcb_params|dlg_cell|dlg_cb_params")
        .allowlist_type("uac_req_t|dlg_t|ksr_str")
        .allowlist_type("dmq_api_t|dmq_peer_t|dmq_node_t|dmq_node_list_t|peer_reponse_t|sr_module")
        .allowlist_var("DMQ_NODE_ACTIVE") // reg_cluster
        .allowlist_type("socket_info|sip_uri|sip_uri_t|dest_info")
        .allowlist_type("db_func_t|db1_con_t|db1_res_t|db_key_t|db_val_t|db_row_t")
        .allowlist_type("counter_handle_t|counter_def_t|stat_var")
        .allowlist_type("gen_lock_t|request_method")
        .allowlist_var("REQUEST_ROUTE|FAILURE_ROUTE|BRANCH_ROUTE|ONREPLY_ROUTE|LOCAL_ROUTE")
        .allowlist_var("BRANCH_FAILURE_ROUTE|ANY_ROUTE|EVENT_ROUTE|ONEVENT_ROUTE")
        .allowlist_var("PARAM_STRING|PARAM_INT|PARAM_STR|PARAM_USE_FUNC|DEFAULT_DLFLAGS")
        .allowlist_var("ksr_rs_.*|PV_TYPE_.*|PVT_.*|PV_VAL_.*|SR_KEMIP_.*|TMCB_.*|DLGCB_.*|RRCB_.*|HDR_.*_F|HDR_.*_T")
        .allowlist_var("PROC_.*|L_ALERT|L_BUG|L_CRIT2|L_CRIT|L_ERR|L_WARN|L_NOTICE|L_INFO|L_DBG")
        .allowlist_var("AVP_.*|E_.*|DB1_.*|RET_ARRAY|SIP_REQUEST|SIP_REPLY|NO_SCRIPT")
        .allowlist_var("sr_kemi_.*|route_type|_km_log_engine.*|TIMER_TICKS_HZ")
        .allowlist_function("fixup_spve_spve|fixup_free_spve_spve|fixup_spve_null")
        .allowlist_function("fixup_free_spve_null|fixup_igp_null|fixup_free_igp_null")
        .allowlist_function("fixup_spve_pvar|fixup_free_spve_pvar|fixup_spve_igp")
        .allowlist_function("fixup_free_spve_igp|get_str_fparam|get_int_fparam|pv_spec_free")
        .allowlist_function("pv_parse_spec2|pv_get_spec_value|pv_set_spec_value|pv_cache_get")
        .allowlist_function("pv_get_null|pv_get_strval|pv_get_sintval|pv_get_uintval")
        .allowlist_function("pv_get_avp_name|add_avp|search_first_avp|destroy_avp")
        .allowlist_function("parse_headers|parse_from_header|parse_to_header|parse_uri|parse_sip_msg_uri")
        .allowlist_function("del_lump|insert_new_lump_after|insert_new_lump_before|anchor_lump")
        .allowlist_function("append_new_lump|insert_subst_lump_after")
        .allowlist_function("find_export|find_module_by_name|register_basic_timers|fork_basic_timer")
        .allowlist_function("fork_process|cfg_child_init|register_procs|cfg_register_child")
        .allowlist_function("sr_kemi_modules_add|sr_kemi_exports_register")
        .allowlist_function("route_lookup|run_top_route|get_route_type|set_route_type")
        .allowlist_function("faked_msg_init|faked_msg_next|faked_msg_get_next|ksr_msg_env_reset")
        .allowlist_function("grep_sock_info|parse_phostport|lookup_local_socket|ksr_get_socket_by_name")
        .allowlist_function("counter_register_array|counter_add|counter_inc|counter_get_val")
        .allowlist_function("register_stat|update_stat|get_stat_val|register_module_stats")
        .allowlist_function("get_ticks|get_ticks_raw|kam_rand|fastrand")
        .allowlist_function("sr_kemi_eng_get|sr_kemi_cbname_lookup_name")
        .allowlist_function("sr_kemi_route") // send: event_callback
        .allowlist_var("event_rt|main_rt|failure_rt|onreply_rt|branch_rt|rt_init_run_actions")
        .allowlist_function("init_run_actions_ctx|run_top_route|set_route_type")
        .allowlist_type("run_act_ctx_t|sr_kemi_eng_t")
        .allowlist_function("append_fromtag|rpc_.*")
        .allowlist_function("set_dst_uri") // uac_reg_request_to
        .allowlist_var("DLG_CONFIRMED|CNT_F_.*") // registration (tm dialog state, counters)
        .allowlist_function("sr_cfgenv_get|rewrite_uri|get_body").allowlist_var("FL_UAC_AUTH") // uac_auth
        .allowlist_var("ruri_is_new") // perf: uac_auth keeps an unchanged R-URI without rewrite_uri
        .allowlist_var("FL_USE_UAC_FROM|FL_USE_UAC_TO|RR_FLOW_DOWNSTREAM|RR_FLOW_UPSTREAM")
        .opaque_type("lock_set_t")
        .blocklist_type("max_align_t");
    let bindings = b
        .generate()
        .expect("bindgen failed on include/kamailio_wrapper.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets this")).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("cannot write bindings.rs");
}

fn compile_glue(src: &Path, defines: &[(String, Option<String>)]) {
    let mut build = cc::Build::new();
    build
        .include(src)
        .include("include")
        .warnings(false)
        .flag_if_supported("-fPIC");
    for (k, v) in defines {
        build.define(k, v.as_deref());
    }
    for entry in std::fs::read_dir("kamailio-glue").expect("kamailio-glue/ exists") {
        let path = entry.expect("readable kamailio-glue/").path();
        if path.extension().is_some_and(|e| e == "c") {
            println!("cargo:rerun-if-changed={}", path.display());
            build.file(&path);
        }
    }
    build.compile("ksr_rs_glue");
}

/// Preprocess core/ver_defs.h with our set and compare SER_COMPILE_FLAGS with
/// `kamailio -V`: a drift would make the core refuse the module at load.
fn check_compile_flags(src: &Path, defines: &[(String, Option<String>)], want: &str) {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets this"));
    let probe = out_dir.join("flags_probe.c");
    std::fs::write(
        &probe,
        "#include \"core/ver_defs.h\"\nKSR_FLAGS_ARE SER_COMPILE_FLAGS\n",
    )
    .expect("write probe");
    let mut cmd = Command::new("cc");
    cmd.arg("-E").arg("-P").arg(format!("-I{}", src.display()));
    for a in clang_define_args(defines) {
        cmd.arg(a);
    }
    cmd.arg(&probe);
    let out = cmd.output().expect("run the C preprocessor");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("KSR_FLAGS_ARE"))
        .unwrap_or("");
    // "a" "b" ... concatenation as the compiler would do it.
    let mut got = String::new();
    let mut in_str = false;
    let mut prev = '\0';
    for c in line.trim_start_matches("KSR_FLAGS_ARE").chars() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
        } else if in_str {
            got.push(c);
        }
        prev = c;
    }
    if got.trim_end() != want.trim_end() {
        panic!("SER_COMPILE_FLAGS mismatch:\n ours: {got}\n core: {want}");
    }
}
