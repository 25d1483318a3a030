//! `aix scan`: parse every discovered file once and summarise what an import would carry, per
//! provider, or print the items as JSON lines. Reads only; emits no frames.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};

use super::config::WorkerOptions;
use super::discover::discover;
use super::file_state::{FileState, ParserFactory};
use super::lineage::{Lineage, seal_lineage};
use super::sources::Provider;

/// What one provider's files hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSummary {
    pub files: u64,
    pub unreadable_files: u64,
    pub sessions: u64,
    pub subagent_sessions: u64,
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
    pub malformed_lines: u64,
    /// Records that are not messages, by record type.
    pub skipped_records: BTreeMap<String, u64>,
}

/// Parses every file under the roots. With `items_out`, each item is written to it as one JSON
/// line (lineage filled in as a backfill would).
///
/// Errors: only a failed write to `items_out`; unreadable files are counted.
pub fn scan(
    options: &WorkerOptions,
    factory: &ParserFactory,
    mut items_out: Option<&mut dyn Write>,
) -> io::Result<BTreeMap<Provider, ProviderSummary>> {
    let mut out: BTreeMap<Provider, ProviderSummary> = BTreeMap::new();
    let mut seen: HashSet<(Provider, String)> = HashSet::new();
    let mut lineage = Lineage::default();
    for d in discover(options) {
        let provider = d.source.provider;
        let summary = out.entry(provider).or_default();
        summary.files += 1;
        let mut state = FileState::new(d.source, None);
        let (mut items, cursor) = match state.update(factory, true) {
            Ok(Some(u)) => (u.items, u.cursor),
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(path = %state.source.path.display(), error_kind = ?e.kind(), "file not readable");
                summary.unreadable_files += 1;
                continue;
            }
        };
        if let Some(parser) = state.parser() {
            // Scan reports what the files say; children read before their parent's link are
            // not re-sent here (the runtime does that when it emits).
            lineage.record(&state.source, &items, parser);
            let stats = parser.stats();
            summary.malformed_lines += stats.malformed_lines;
            for (kind, n) in &stats.skipped_records {
                *summary.skipped_records.entry(kind.clone()).or_default() += n;
            }
        }
        lineage.fill(&state.source, &mut items, &cursor);
        seal_lineage(&mut items);
        for item in &items {
            if seen.insert((provider, item.source_session_id.clone())) {
                if item.session.is_subagent {
                    summary.subagent_sessions += 1;
                } else {
                    summary.sessions += 1;
                }
            }
            summary.turns += item.turns.len() as u64;
            summary.messages += item.messages.len() as u64;
            summary.tool_calls += item.tool_calls.len() as u64;
            if let Some(w) = items_out.as_deref_mut() {
                // Items are plain data, so the only failure is the writer's (e.g. a closed pipe).
                serde_json::to_writer(&mut *w, item).map_err(std::io::Error::from)?;
                w.write_all(b"\n")?;
            }
        }
    }
    Ok(out)
}

/// The human-readable summary printed by `aix scan`.
pub fn render_summary(summary: &BTreeMap<Provider, ProviderSummary>) -> String {
    let mut s = String::new();
    if summary.is_empty() {
        s.push_str("no session files found\n");
    }
    for (provider, p) in summary {
        // Writing to a String cannot fail.
        let _ = writeln!(s, "{}:", provider.as_str());
        let _ = writeln!(s, "  files              {}", p.files);
        if p.unreadable_files > 0 {
            let _ = writeln!(s, "  unreadable files   {}", p.unreadable_files);
        }
        let _ = writeln!(s, "  sessions           {}", p.sessions);
        let _ = writeln!(s, "  subagent sessions  {}", p.subagent_sessions);
        let _ = writeln!(s, "  turns              {}", p.turns);
        let _ = writeln!(s, "  messages           {}", p.messages);
        let _ = writeln!(s, "  tool calls         {}", p.tool_calls);
        let _ = writeln!(s, "  malformed lines    {}", p.malformed_lines);
        let skipped: u64 = p.skipped_records.values().sum();
        let _ = writeln!(s, "  skipped records    {skipped}");
        for (kind, n) in &p.skipped_records {
            let _ = writeln!(s, "    {kind:<24} {n}");
        }
    }
    s
}
