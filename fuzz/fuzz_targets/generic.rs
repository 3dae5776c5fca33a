//! The generic adapter with a config exercising every field.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xl_core::gate::PayloadMeta;
use xl_fw_generic::{FieldPaths, GenericAdapter, GenericConfig};

fn adapter() -> &'static GenericAdapter {
    static ADAPTER: OnceLock<GenericAdapter> = OnceLock::new();
    ADAPTER.get_or_init(|| {
        let config = GenericConfig {
            name: "fuzz".into(),
            events: Some("/records".into()),
            fields: FieldPaths {
                code: "/code".into(),
                door: Some("/door".into()),
                person_id: Some("/id".into()),
                person_name: Some("/name".into()),
                card: Some("/card".into()),
                time: Some("/ts".into()),
                event_id: Some("/seq".into()),
                device_id: Some("/sn".into()),
                method: Some("/verify".into()),
                direction: Some("/dir".into()),
            },
            codes: [("1".to_owned(), granted())].into(),
            methods: Default::default(),
            time_format: Default::default(),
            door_zero_based: true,
        };
        match GenericAdapter::new(config) {
            Ok(a) => a,
            Err(e) => panic!("the fuzz config is valid: {e}"),
        }
    })
}

fn granted() -> xl_fw_generic::CodeMeaning {
    xl_fw_generic::CodeMeaning {
        kind: xl_core::gate::GateEventKind::AccessGranted,
        reason: None,
        method: None,
        phase: None,
        detail: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let meta = PayloadMeta::new(jiff::Timestamp::UNIX_EPOCH);
    let _ = adapter().decode(&meta, data);
});
