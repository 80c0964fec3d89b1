//! SCALE values of a real runtime (Polkadot, spec 2000000, from fixtures/substrate/metadata):
//! bytes 0..4 pick the type (modulo the registry's size), the rest is the value decoded as that
//! type and rendered as the substrate monitors render it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use monitor_strategies::Metadata;

static METADATA_HEX: &str = include_str!("../../fixtures/substrate/metadata/polkadot-2000000.hex");

fn metadata() -> &'static Metadata {
    static META: OnceLock<Metadata> = OnceLock::new();
    META.get_or_init(|| Metadata::from_hex(METADATA_HEX.trim()).expect("fixture metadata"))
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, value @ ..] = data else {
        return;
    };
    let meta = metadata();
    let count = monitor_strategies::fuzzing::type_count(meta).max(1);
    let ty = u32::from_le_bytes([*a, *b, *c, *d]) % count;
    monitor_strategies::fuzzing::scale_value(meta, ty, value);
});
