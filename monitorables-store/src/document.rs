//! The per-base-chain monitorables document and the merge of spec §6.2.
//!
//! ```json
//! { "<chain_id>": { "chain_name": "cosmoshub",
//!                   "systems":         { "<source_id>": { "name": "…", "manager_names": ["…"] } },
//!                   "nodes":           { … },
//!                   "github_repos":    { … },
//!                   "dockerhub_repos": { … },
//!                   "chains":          { … } } }
//! ```
//!
//! Keys keep their insertion order (like the Python dicts PANIC stored), and removals keep the order
//! of what remains. [`merge`] is a pure function so that every store applies exactly the same
//! algorithm.

use std::collections::HashSet;

use indexmap::IndexMap;
use monitor_core::envelope::MonitorableMessage;
use monitor_core::MonitorableType;
use serde::{Deserialize, Serialize};

/// One monitored source: its display name and the managers that run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// The source's display name.
    pub name: String,
    /// Managers currently monitoring this source, in the order they reported it.
    pub manager_names: Vec<String>,
}

/// Sources of one type, keyed by source id.
pub type Sources = IndexMap<String, SourceEntry>;

/// One chain of a base chain: its name and the sources of each of the five types.
///
/// Every entry carries all five types (PANIC's empty template), empty ones included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    /// The sub chain's name (`general` for general configs).
    #[serde(default)]
    pub chain_name: String,
    /// Systems.
    #[serde(default)]
    pub systems: Sources,
    /// Nodes.
    #[serde(default)]
    pub nodes: Sources,
    /// GitHub repositories.
    #[serde(default)]
    pub github_repos: Sources,
    /// DockerHub repositories.
    #[serde(default)]
    pub dockerhub_repos: Sources,
    /// Chains (networks and contracts).
    #[serde(default)]
    pub chains: Sources,
}

impl ChainEntry {
    /// The empty template with `chain_name` set.
    pub fn new(chain_name: &str) -> Self {
        ChainEntry {
            chain_name: chain_name.to_owned(),
            ..ChainEntry::default()
        }
    }

    /// The sources of one type.
    pub fn sources(&self, monitorable_type: MonitorableType) -> &Sources {
        match monitorable_type {
            MonitorableType::Systems => &self.systems,
            MonitorableType::Nodes => &self.nodes,
            MonitorableType::GithubRepos => &self.github_repos,
            MonitorableType::DockerhubRepos => &self.dockerhub_repos,
            MonitorableType::Chains => &self.chains,
        }
    }

    /// The sources of one type, mutably.
    pub fn sources_mut(&mut self, monitorable_type: MonitorableType) -> &mut Sources {
        match monitorable_type {
            MonitorableType::Systems => &mut self.systems,
            MonitorableType::Nodes => &mut self.nodes,
            MonitorableType::GithubRepos => &mut self.github_repos,
            MonitorableType::DockerhubRepos => &mut self.dockerhub_repos,
            MonitorableType::Chains => &mut self.chains,
        }
    }

    /// Whether no type has any source.
    pub fn is_empty(&self) -> bool {
        MonitorableType::ALL
            .iter()
            .all(|t| self.sources(*t).is_empty())
    }
}

/// The document of one base chain: chains keyed by chain id, in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Document(pub IndexMap<String, ChainEntry>);

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no chain is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The chain with id `chain_id`.
    pub fn chain(&self, chain_id: &str) -> Option<&ChainEntry> {
        self.0.get(chain_id)
    }

    /// Parse a stored document (JSON object).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The stored form (compact JSON).
    pub fn to_json(&self) -> String {
        // Serialising string-keyed maps of strings cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Merge one monitorable message of type `monitorable_type` into `doc` (spec §6.2 steps 2–4):
///
/// 2. in every chain, remove `msg.manager_name` from every source of that type and drop sources
///    left with no manager;
/// 3. for every source of the message, create its chain (empty template, `chain_name` from the
///    message) if missing, then add the source `{name, manager_names: [manager]}` or append the
///    manager to it if not already there;
/// 4. delete every chain not mentioned in the message that now has no source of any type.
///
/// Sources of other managers and of other types are left untouched. An empty `sources` list
/// therefore removes the manager from that type across the whole base chain.
pub fn merge(doc: &mut Document, monitorable_type: MonitorableType, msg: &MonitorableMessage) {
    let manager = msg.manager_name.as_str();

    // Step 2.
    for chain in doc.0.values_mut() {
        let sources = chain.sources_mut(monitorable_type);
        sources.retain(|_, source| {
            source.manager_names.retain(|m| m != manager);
            !source.manager_names.is_empty()
        });
    }

    // Step 3.
    for source in &msg.sources {
        let chain = doc
            .0
            .entry(source.chain_id.clone())
            .or_insert_with(|| ChainEntry::new(&source.chain_name));
        let sources = chain.sources_mut(monitorable_type);
        match sources.get_mut(&source.source_id) {
            Some(entry) => {
                if !entry.manager_names.iter().any(|m| m == manager) {
                    entry.manager_names.push(manager.to_owned());
                }
            }
            None => {
                sources.insert(
                    source.source_id.clone(),
                    SourceEntry {
                        name: source.source_name.clone(),
                        manager_names: vec![manager.to_owned()],
                    },
                );
            }
        }
    }

    // Step 4.
    let mentioned: HashSet<&str> = msg.sources.iter().map(|s| s.chain_id.as_str()).collect();
    doc.0
        .retain(|chain_id, chain| mentioned.contains(chain_id.as_str()) || !chain.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_core::envelope::MonitorableSource;

    fn src(chain_id: &str, chain_name: &str, id: &str, name: &str) -> MonitorableSource {
        MonitorableSource {
            chain_id: chain_id.into(),
            chain_name: chain_name.into(),
            source_id: id.into(),
            source_name: name.into(),
        }
    }

    fn msg(manager: &str, sources: Vec<MonitorableSource>) -> MonitorableMessage {
        MonitorableMessage {
            manager_name: manager.into(),
            sources,
        }
    }

    #[test]
    fn template_and_order() {
        let mut doc = Document::new();
        merge(
            &mut doc,
            MonitorableType::Systems,
            &msg(
                "M",
                vec![
                    src("c2", "hub2", "s_b", "b"),
                    src("c1", "hub1", "s_a", "a"),
                    src("c2", "hub2", "s_a", "a2"),
                ],
            ),
        );
        assert_eq!(
            doc.to_json(),
            r#"{"c2":{"chain_name":"hub2","systems":{"s_b":{"name":"b","manager_names":["M"]},"s_a":{"name":"a2","manager_names":["M"]}},"nodes":{},"github_repos":{},"dockerhub_repos":{},"chains":{}},"c1":{"chain_name":"hub1","systems":{"s_a":{"name":"a","manager_names":["M"]}},"nodes":{},"github_repos":{},"dockerhub_repos":{},"chains":{}}}"#
        );
        // Round trip keeps the order.
        assert_eq!(Document::from_json(&doc.to_json()).unwrap(), doc);
    }

    #[test]
    fn chain_kept_while_other_types_have_sources() {
        let mut doc = Document::new();
        merge(
            &mut doc,
            MonitorableType::Systems,
            &msg("M", vec![src("c1", "hub", "s", "s")]),
        );
        merge(
            &mut doc,
            MonitorableType::Nodes,
            &msg("N", vec![src("c1", "hub", "n", "n")]),
        );
        merge(&mut doc, MonitorableType::Systems, &msg("M", vec![]));
        let chain = doc.chain("c1").unwrap();
        assert!(chain.systems.is_empty());
        assert_eq!(chain.nodes.len(), 1);
        merge(&mut doc, MonitorableType::Nodes, &msg("N", vec![]));
        assert!(doc.is_empty());
    }

    #[test]
    fn idempotent() {
        let m = msg(
            "M",
            vec![src("c1", "hub", "a", "a"), src("c1", "hub", "b", "b")],
        );
        let mut doc = Document::new();
        merge(&mut doc, MonitorableType::Nodes, &m);
        let once = doc.clone();
        merge(&mut doc, MonitorableType::Nodes, &m);
        assert_eq!(doc, once);
    }

    #[test]
    fn lenient_about_missing_types() {
        let doc = Document::from_json(r#"{"c1":{"chain_name":"x","systems":{}}}"#).unwrap();
        assert_eq!(doc.chain("c1").unwrap().chain_name, "x");
        assert!(doc.chain("c1").unwrap().is_empty());
        assert!(Document::from_json("[1]").is_err());
        assert!(Document::from_json(r#"{"c1":{"systems":{"a":{"name":1}}}}"#).is_err());
    }
}
