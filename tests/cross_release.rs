//! A module built for one Kamailio release, loaded into another, is refused
//! by the core with its version-mismatch message: no dlopen failure on a
//! library the other release lacks, no crash.
//!
//! Needs the modules built for the other releases, so it is ignored in a
//! plain `cargo test`; `make test` builds every release first and then runs
//! it in each release's root (`make test-cross`), naming the others' modules
//! in `UAC_OTHER_RELEASE_MODULES` (colon-separated paths).

mod common;

use common::kamailio::{Config, Kamailio, check_config};

#[test]
#[ignore = "needs the modules of the other releases: run by `make test-cross`"]
fn a_module_of_another_release_is_refused_with_the_version_mismatch_message() {
    let list = std::env::var("UAC_OTHER_RELEASE_MODULES")
        .expect("UAC_OTHER_RELEASE_MODULES names the other releases' modules");
    let modules: Vec<&str> = list.split(':').filter(|p| !p.is_empty()).collect();
    assert!(!modules.is_empty(), "no module listed");
    let core = std::process::Command::new(common::kamailio::KAMAILIO)
        .arg("-V")
        .output()
        .expect("kamailio -V");
    let core_version = String::from_utf8_lossy(&core.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("version: ").map(|v| v.trim().to_owned()))
        .expect("kamailio -V prints its version");
    for module in modules {
        assert!(std::path::Path::new(module).exists(), "{module} missing");
        let mut cfg = Config::new("request_route { drop; }");
        cfg.uac = module.into();
        let mismatch = format!("module version mismatch for {module}; core: {core_version}");

        // Config check (`kamailio -c`): the load itself.
        let check = check_config(&cfg);
        assert!(
            !check.ok,
            "{module} was accepted by {core_version}:\n{}",
            check.output
        );
        assert!(
            check.output.contains(&mismatch),
            "{module} not refused with the version-mismatch message:\n{}",
            check.output
        );

        // A real start: refused the same way, and the process exits by itself.
        let log = Kamailio::start_expect_failure(cfg);
        assert!(log.contains(&mismatch), "{module} at start:\n{log}");
        assert!(
            !log.contains("could not open module"),
            "dlopen failed before the version check:\n{log}"
        );
    }
}
