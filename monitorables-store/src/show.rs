//! What is monitored, as text for people (`monitorables-store show [--base-chain B]`).

use std::fmt::Write as _;

use monitor_core::MonitorableType;

use crate::document::Document;
use crate::store::{MonitorablesStore, StoreError};

/// Render one base chain's document:
///
/// ```text
/// cosmos
///   cosmoshub (chain id: chain_1)
///     systems:
///       validator_host (id: sys_1) by System Monitors Manager
/// ```
///
/// Types without sources are left out; an empty document prints `  (nothing monitored)`.
pub fn render(base_chain: &str, doc: &Document) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{base_chain}");
    if doc.is_empty() {
        let _ = writeln!(out, "  (nothing monitored)");
    }
    for (chain_id, chain) in &doc.0 {
        let _ = writeln!(out, "  {} (chain id: {chain_id})", chain.chain_name);
        for ty in MonitorableType::ALL {
            let sources = chain.sources(ty);
            if sources.is_empty() {
                continue;
            }
            let _ = writeln!(out, "    {ty}:");
            for (source_id, source) in sources {
                let _ = writeln!(
                    out,
                    "      {} (id: {source_id}) by {}",
                    source.name,
                    source.manager_names.join(", ")
                );
            }
        }
    }
    out
}

/// Render `base_chain` (or every stored base chain when `None`) from `store`.
pub async fn show(
    store: &dyn MonitorablesStore,
    base_chain: Option<&str>,
) -> Result<String, StoreError> {
    let chains = match base_chain {
        Some(b) => vec![b.to_lowercase()],
        None => store.base_chains().await?,
    };
    if chains.is_empty() {
        return Ok("nothing monitored\n".to_owned());
    }
    let mut out = String::new();
    for (i, chain) in chains.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&render(chain, &store.load(chain).await?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::merge;
    use monitor_core::envelope::{MonitorableMessage, MonitorableSource};

    #[test]
    fn renders_sources_and_managers() {
        let mut doc = Document::new();
        for manager in ["System Monitors Manager", "Node Monitors Manager"] {
            merge(
                &mut doc,
                MonitorableType::Systems,
                &MonitorableMessage {
                    manager_name: manager.into(),
                    sources: vec![MonitorableSource {
                        chain_id: "chain_1".into(),
                        chain_name: "cosmoshub".into(),
                        source_id: "sys_1".into(),
                        source_name: "validator_host".into(),
                    }],
                },
            );
        }
        assert_eq!(
            render("cosmos", &doc),
            "cosmos\n  cosmoshub (chain id: chain_1)\n    systems:\n      validator_host (id: sys_1) by System Monitors Manager, Node Monitors Manager\n"
        );
        assert_eq!(
            render("general", &Document::new()),
            "general\n  (nothing monitored)\n"
        );
    }
}
