//! A DMQ message for the `uac` peer (`reg_cluster`): any body another node (or anyone
//! reaching the DMQ socket) sends. Decoding never panics; what decodes re-encodes to
//! the same message; a binding it carries is taken or refused without breaking the
//! record's state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::uac::reg::cluster_msg::{self, Item, Kind};
use uac::uac::reg::state::RegState;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = cluster_msg::decode(data) else {
        return;
    };
    let again = match &m.kind {
        Kind::State(items) => {
            let bodies = cluster_msg::encode_state(items, &m.sender, 4096);
            let mut back = Vec::new();
            for b in &bodies {
                match cluster_msg::decode(b).expect("our own encoding decodes").kind {
                    Kind::State(v) => back.extend(v),
                    k => panic!("state became {k:?}"),
                }
            }
            assert_eq!(&back, items, "state round trip");
            let mut st = RegState::new(3600, 0, 0, 1_000_000);
            for item in items {
                match item {
                    Item::Binding(b) => {
                        if st.adopt(b, 1_000_000) {
                            let k = st
                                .known_binding(&b.l_uuid, 1_000_000)
                                .expect("an adopted binding is known");
                            assert_eq!((k.call_id.as_slice(), k.cseq), (b.call_id.as_slice(), b.cseq));
                            assert!(st.wake_at() >= 1_000_000 || st.share);
                        }
                    }
                    Item::Gone(g) => {
                        let _ = st.forget(g, 1_000_000);
                    }
                }
            }
            return;
        }
        k => cluster_msg::encode_signal(k, &m.sender, m.contact_addr.as_deref()),
    };
    let m2 = cluster_msg::decode(&again).expect("our own encoding decodes");
    assert_eq!((m2.kind, m2.sender, m2.contact_addr), (m.kind, m.sender, m.contact_addr));
});
