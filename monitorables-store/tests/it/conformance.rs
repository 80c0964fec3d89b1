//! One conformance suite for every `MonitorablesStore`: each case runs against `MemoryStore` and
//! against `RedisStore` (real Redis, a unique namespace per test, deleted at the end). Each case gets
//! two store values sharing one backend (for Redis: two separate connections).

use std::sync::Arc;

use crate::common::{msg, normalize, src, RedisNs};
use monitor_core::{MonitorableKey, MonitorableType};
use monitorables_store::{merge, Document, MemoryStore, MonitorablesStore};

type Store = Arc<dyn MonitorablesStore>;

fn key(k: &str) -> MonitorableKey {
    MonitorableKey::parse(k).unwrap()
}

mod cases {
    use super::*;

    pub(crate) async fn document_structure(a: Store, _b: Store) {
        a.apply(
            &key("cosmos.systems"),
            &msg(
                "System Monitors Manager",
                vec![
                    src("chain_1", "cosmoshub", "sys_1", "validator_host"),
                    src("chain_2", "regen", "sys_2", "regen_host"),
                ],
            ),
        )
        .await
        .unwrap();
        let doc = a.load("cosmos").await.unwrap();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            concat!(
                r#"{"chain_1":{"chain_name":"cosmoshub","systems":{"sys_1":{"name":"validator_host","manager_names":["System Monitors Manager"]}},"nodes":{},"github_repos":{},"dockerhub_repos":{},"chains":{}},"#,
                r#""chain_2":{"chain_name":"regen","systems":{"sys_2":{"name":"regen_host","manager_names":["System Monitors Manager"]}},"nodes":{},"github_repos":{},"dockerhub_repos":{},"chains":{}}}"#
            )
        );
        // Base chains are case-insensitive; other base chains are separate and empty.
        assert_eq!(a.load("COSMOS").await.unwrap(), doc);
        assert!(a.load("substrate").await.unwrap().is_empty());
        assert_eq!(a.base_chains().await.unwrap(), vec!["cosmos".to_owned()]);
    }

    pub(crate) async fn other_managers_and_types_untouched(a: Store, b: Store) {
        a.apply(
            &key("cosmos.nodes"),
            &msg(
                "Node Monitors Manager",
                vec![src("c1", "hub", "n1", "node1")],
            ),
        )
        .await
        .unwrap();
        b.apply(
            &key("cosmos.nodes"),
            &msg(
                "Contract Monitors Manager",
                vec![src("c1", "hub", "n2", "node2")],
            ),
        )
        .await
        .unwrap();
        a.apply(
            &key("cosmos.systems"),
            &msg(
                "Node Monitors Manager",
                vec![src("c1", "hub", "s1", "sys1")],
            ),
        )
        .await
        .unwrap();
        a.apply(
            &key("general.systems"),
            &msg(
                "System Monitors Manager",
                vec![src("general", "general", "g1", "gsys")],
            ),
        )
        .await
        .unwrap();
        // Node manager now runs a different node set: only its own `nodes` entries change.
        b.apply(
            &key("cosmos.nodes"),
            &msg(
                "Node Monitors Manager",
                vec![src("c1", "hub", "n3", "node3")],
            ),
        )
        .await
        .unwrap();
        let doc = a.load("cosmos").await.unwrap();
        let c1 = doc.chain("c1").unwrap();
        assert_eq!(c1.nodes.keys().collect::<Vec<_>>(), vec!["n2", "n3"]);
        assert_eq!(
            c1.nodes["n2"].manager_names,
            vec!["Contract Monitors Manager"]
        );
        assert_eq!(c1.nodes["n3"].manager_names, vec!["Node Monitors Manager"]);
        assert_eq!(c1.systems.keys().collect::<Vec<_>>(), vec!["s1"]);
        assert_eq!(
            b.load("general")
                .await
                .unwrap()
                .chain("general")
                .unwrap()
                .systems["g1"]
                .name,
            "gsys"
        );
    }

    pub(crate) async fn fewer_sources_removes(a: Store, b: Store) {
        let k = key("substrate.systems");
        a.apply(
            &k,
            &msg(
                "M",
                vec![
                    src("c1", "polkadot", "s1", "one"),
                    src("c1", "polkadot", "s2", "two"),
                    src("c2", "kusama", "s3", "three"),
                ],
            ),
        )
        .await
        .unwrap();
        b.apply(&k, &msg("M", vec![src("c1", "polkadot", "s2", "two")]))
            .await
            .unwrap();
        let doc = a.load("substrate").await.unwrap();
        assert_eq!(doc.0.keys().collect::<Vec<_>>(), vec!["c1"]);
        assert_eq!(
            doc.chain("c1").unwrap().systems.keys().collect::<Vec<_>>(),
            vec!["s2"]
        );
    }

    pub(crate) async fn empty_sources_removes_manager(a: Store, b: Store) {
        let k = key("chainlink.nodes");
        a.apply(
            &k,
            &msg(
                "M",
                vec![src("c1", "bsc", "n1", "n1"), src("c2", "eth", "n2", "n2")],
            ),
        )
        .await
        .unwrap();
        a.apply(&k, &msg("Other", vec![src("c2", "eth", "n2", "n2")]))
            .await
            .unwrap();
        a.apply(
            &key("chainlink.chains"),
            &msg("M", vec![src("c1", "bsc", "c1", "chainlink bsc")]),
        )
        .await
        .unwrap();
        b.apply(&k, &msg("M", vec![])).await.unwrap();
        let doc = a.load("chainlink").await.unwrap();
        let c1 = doc.chain("c1").unwrap();
        assert!(c1.nodes.is_empty());
        assert_eq!(c1.chains.len(), 1, "other types of the manager stay");
        let c2 = doc.chain("c2").unwrap();
        assert_eq!(c2.nodes["n2"].manager_names, vec!["Other"]);
    }

    pub(crate) async fn chains_without_sources_removed(a: Store, b: Store) {
        let k = key("cosmos.github_repos");
        a.apply(
            &k,
            &msg(
                "GitHub Monitors Manager",
                vec![
                    src("c1", "hub", "r1", "cosmos/gaia"),
                    src("c2", "regen", "r2", "regen/ledger"),
                ],
            ),
        )
        .await
        .unwrap();
        b.apply(
            &k,
            &msg(
                "GitHub Monitors Manager",
                vec![src("c2", "regen", "r2", "regen/ledger")],
            ),
        )
        .await
        .unwrap();
        let doc = a.load("cosmos").await.unwrap();
        assert!(doc.chain("c1").is_none(), "c1 has no source left");
        assert!(doc.chain("c2").is_some());
        b.apply(&k, &msg("GitHub Monitors Manager", vec![]))
            .await
            .unwrap();
        assert!(a.load("cosmos").await.unwrap().is_empty());
        assert!(a.base_chains().await.unwrap().is_empty());
    }

    pub(crate) async fn two_managers_one_source(a: Store, b: Store) {
        let k = key("cosmos.chains");
        a.apply(
            &k,
            &msg(
                "Network Monitors Manager",
                vec![src("c1", "hub", "c1", "cosmos hub")],
            ),
        )
        .await
        .unwrap();
        b.apply(
            &k,
            &msg(
                "Contract Monitors Manager",
                vec![src("c1", "hub", "c1", "cosmos hub")],
            ),
        )
        .await
        .unwrap();
        // Sending the same message again does not duplicate the manager.
        b.apply(
            &k,
            &msg(
                "Contract Monitors Manager",
                vec![src("c1", "hub", "c1", "cosmos hub")],
            ),
        )
        .await
        .unwrap();
        let doc = a.load("cosmos").await.unwrap();
        assert_eq!(
            doc.chain("c1").unwrap().chains["c1"].manager_names,
            vec!["Network Monitors Manager", "Contract Monitors Manager"]
        );
        a.apply(&k, &msg("Network Monitors Manager", vec![]))
            .await
            .unwrap();
        let doc = b.load("cosmos").await.unwrap();
        assert_eq!(
            doc.chain("c1").unwrap().chains["c1"].manager_names,
            vec!["Contract Monitors Manager"]
        );
    }

    /// Many tasks on two store values write the same base chain at once; every final state is kept.
    pub(crate) async fn concurrent_applies_lose_nothing(a: Store, b: Store) {
        const MANAGERS: usize = 12;
        const ROUNDS: usize = 6;
        let types = [
            MonitorableType::Systems,
            MonitorableType::Nodes,
            MonitorableType::Chains,
        ];
        // What manager `m` sends for type `t` in round `r`: a few sources on a few chains, one
        // source shared by every manager.
        let message = |m: usize, t: usize, r: usize| {
            let manager = format!("Manager {m}");
            let mut sources = vec![src("shared", "shared chain", "common", "common")];
            for i in 0..(1 + (m + r) % 3) {
                let chain = format!("c{}", (m + i + r) % 4);
                sources.push(src(
                    &chain,
                    &format!("chain {chain}"),
                    &format!("m{m}_t{t}_s{i}"),
                    &format!("source {i} of {m}"),
                ));
            }
            msg(&manager, sources)
        };
        let mut tasks = Vec::new();
        for m in 0..MANAGERS {
            for (ti, t) in types.iter().enumerate() {
                let store = if (m + ti) % 2 == 0 {
                    a.clone()
                } else {
                    b.clone()
                };
                let k = MonitorableKey::new("cosmos", *t);
                let msgs: Vec<_> = (0..ROUNDS).map(|r| message(m, ti, r)).collect();
                tasks.push(tokio::spawn(async move {
                    for mm in &msgs {
                        store.apply(&k, mm).await.unwrap();
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Expected: the last message of every (manager, type), merged in any order.
        let mut expected = Document::new();
        for m in 0..MANAGERS {
            for (ti, t) in types.iter().enumerate() {
                merge(&mut expected, *t, &message(m, ti, ROUNDS - 1));
            }
        }
        let got = a.load("cosmos").await.unwrap();
        assert_eq!(normalize(&got), normalize(&expected));
        let common = &got.chain("shared").unwrap().systems["common"];
        assert_eq!(common.manager_names.len(), MANAGERS);
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = MemoryStore::new();
                    cases::$case(Arc::new(store.clone()), Arc::new(store)).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let ns = RedisNs::new(stringify!($case));
                    cases::$case(Arc::new(ns.store()), Arc::new(ns.store())).await;
                }
            )*
        }
    };
}

conformance!(
    document_structure,
    other_managers_and_types_untouched,
    fewer_sources_removes,
    empty_sources_removes_manager,
    chains_without_sources_removed,
    two_managers_one_source,
    concurrent_applies_lose_nothing,
);
