//! Which dead letters a command selects: the filter flags `dlq ls`, `dlq stats` and `reprocess` share.

use anyhow::Context as _;
use sda_host::dlq::read::{self, Filter};

/// Which entries to select; every condition given must hold.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Only entries of these error kinds (repeat it, or separate them with commas), e.g. `PluginTrap,Validation`.
    #[arg(long = "error-kind", value_name = "KIND", value_delimiter = ',')]
    pub error_kinds: Vec<String>,
    /// Only entries of this operator (or source, or sink: the `operator` field).
    #[arg(long)]
    pub operator: Option<String>,
    /// Only entries that failed at or after this time (RFC 3339, e.g. `2026-11-24T06:00:00Z`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only entries that failed before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only entries whose source offset is in this inclusive range: `A..B`, `A..`, `..B` or `A`.
    #[arg(long, value_name = "RANGE")]
    pub source_offset: Option<String>,
    /// Only entries of the plugin whose digest starts with this (`sha256:3af2...` or `3af2...`).
    #[arg(long, value_name = "DIGEST")]
    pub plugin_digest: Option<String>,
    /// Only entries of this envelope schema version.
    #[arg(long, value_name = "VERSION")]
    pub schema_version: Option<u32>,
}

impl FilterArgs {
    pub fn to_filter(&self) -> anyhow::Result<Filter> {
        let time = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<std::time::SystemTime>> {
            text.as_deref()
                .map(|t| {
                    humantime::parse_rfc3339_weak(t)
                        .with_context(|| format!("`--{flag} {t}` is not an RFC 3339 time like 2026-11-24T06:00:00Z"))
                })
                .transpose()
        };
        let mut error_kinds = Vec::new();
        for name in &self.error_kinds {
            error_kinds.push(read::parse_error_kind(name).map_err(anyhow::Error::msg)?);
        }
        Ok(Filter {
            error_kinds,
            operator: self.operator.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            source_offsets: self
                .source_offset
                .as_deref()
                .map(read::parse_offset_range)
                .transpose()
                .map_err(|e| anyhow::anyhow!("`--source-offset`: {e}"))?,
            plugin_digest: self.plugin_digest.clone(),
            schema_version: self.schema_version,
        })
    }
}
