//! Runtime metadata from the fixtures (real V14 and V15 metadata): pallets, storage keys equal
//! to the ones polkadot.js computed, values decoded exactly, hostile bytes refused.

use monitor_strategies::{ss58_decode, KeyArg, Metadata};

use super::{fixture, metadata_hex};

fn meta(name: &str) -> Metadata {
    Metadata::from_hex(&metadata_hex(&format!("metadata/{name}.hex"))).unwrap()
}

/// The fixture's storage key whose legend is `legend`.
fn key_of(node: &serde_json::Value, legend: &str) -> String {
    node["legend"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| v.as_str() == Some(legend))
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| panic!("no key {legend}"))
}

#[test]
fn substrate_metadata_v14_and_v15_decode() {
    let dev = meta("substrate-268");
    assert_eq!(dev.version(), 15);
    assert!(dev.has_pallet("ImOnline") && dev.has_pallet("Democracy"));
    let old = meta("polkadot-1002005");
    assert_eq!(old.version(), 14);
    let new = meta("polkadot-2000000");
    assert!(!new.has_pallet("ImOnline"));
    assert!(new.storage("Staking", "HistoryDepth").is_none());
    assert!(new.has_constant("Staking", "HistoryDepth"));
    assert_eq!(
        dev.constant("Staking", "HistoryDepth")
            .unwrap()
            .unwrap()
            .as_u128(),
        Some(84)
    );
    let lacking = meta("substrate-contracts-node-100");
    assert!(!lacking.has_pallet("Staking"));
}

#[test]
fn substrate_storage_keys_match_polkadot_js() {
    let dev = meta("substrate-268");
    let node = fixture("substrate-dev/validator.json");
    let stash = ss58_decode("5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt").unwrap();
    let cases: Vec<(&str, &str, Vec<KeyArg>, String)> = vec![
        (
            "Session",
            "Validators",
            vec![],
            "Session.Validators".to_owned(),
        ),
        (
            "Staking",
            "Bonded",
            vec![KeyArg::Account(stash)],
            format!(
                "Staking.Bonded({})",
                "5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt"
            ),
        ),
        (
            "Staking",
            "ErasStakersPaged",
            vec![KeyArg::Int(11), KeyArg::Account(stash), KeyArg::Int(1)],
            "Staking.ErasStakersPaged(11, 5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt, 1)"
                .to_owned(),
        ),
        (
            "ImOnline",
            "ReceivedHeartbeats",
            vec![KeyArg::Int(60), KeyArg::Int(1)],
            "ImOnline.ReceivedHeartbeats(60, 1)".to_owned(),
        ),
        (
            "Democracy",
            "ReferendumInfoOf",
            vec![KeyArg::Int(1)],
            "Democracy.ReferendumInfoOf(1)".to_owned(),
        ),
    ];
    for (pallet, item, args, legend) in cases {
        let key = dev.key(pallet, item, &args).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(key)),
            key_of(&node, &legend),
            "{legend}"
        );
    }
    // A key that does not fit its type, or too many keys, is an error.
    assert!(dev
        .key("Democracy", "ReferendumInfoOf", &[KeyArg::Int(1 << 40)])
        .is_err());
    assert!(dev.key("Session", "Validators", &[KeyArg::Int(1)]).is_err());
    assert!(dev.key("NoSuch", "Item", &[]).is_err());
}

#[test]
fn substrate_values_decode_exactly_and_hostile_bytes_are_errors() {
    let dev = meta("substrate-268");
    let node = fixture("substrate-dev/validator.json");
    let best = node["rounds"][0]["best"].as_str().unwrap();
    let storage = &node["storage"][best];
    let raw = |legend: &str| {
        let hex_value = storage[key_of(&node, legend)].as_str().unwrap().to_owned();
        hex::decode(hex_value.trim_start_matches("0x")).unwrap()
    };
    let v = dev
        .decode_storage(
            "Staking",
            "ErasStakers",
            Some(&raw(
                "Staking.ErasStakers(10, 5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt)",
            )),
        )
        .unwrap()
        .unwrap();
    let json = v.to_json(42);
    assert_eq!(json["total"].to_string(), "30100000000000000000");
    assert_eq!(
        json["others"][0]["who"],
        "5DU6tB34bFz5kXGsTyxMzaMW9AQfnUuUiZbzsFQmziJXuQH3"
    );
    let era = dev
        .decode_storage("Staking", "ActiveEra", Some(&raw("Staking.ActiveEra")))
        .unwrap()
        .unwrap();
    assert_eq!(era.field("index").and_then(|i| i.as_u128()), Some(10));
    // Truncated, extended and random bytes: errors, never panics.
    let full = raw("Staking.ErasStakers(10, 5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt)");
    for n in 0..full.len() {
        assert!(dev
            .decode_storage("Staking", "ErasStakers", Some(&full[..n]))
            .is_err());
    }
    let mut longer = full.clone();
    longer.push(0);
    assert!(dev
        .decode_storage("Staking", "ErasStakers", Some(&longer))
        .is_err());
    let events_ty = dev.storage("System", "Events").unwrap().value_ty;
    let mut seed = 7u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        let _ = dev.decode(events_ty, &bytes);
    }
    // Unset ValueQuery items read as their default, OptionQuery ones as none.
    assert_eq!(
        dev.decode_storage("Session", "CurrentIndex", None)
            .unwrap()
            .unwrap()
            .as_u128(),
        Some(0)
    );
    assert!(dev
        .decode_storage("Staking", "Bonded", None)
        .unwrap()
        .is_none());
    // Metadata garbage is an error.
    assert!(Metadata::from_hex("0x6d657461").is_err());
    assert!(Metadata::from_hex("zz").is_err());
}
