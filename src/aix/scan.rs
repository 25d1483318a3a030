//! `aix scan`: parse every discovered file and read every store once, and summarise what an
//! import would carry, per provider (all five listed, found or not), or print the items as JSON
//! lines. Reads only; emits no frames.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};

use super::config::WorkerOptions;
use super::discover::{discover, roots};
use super::figures::{FigureTally, SessionFigures};
use super::file_state::{FileState, ParserFactory};
use super::lineage::{Lineage, seal_lineage};
use super::mapping;
use super::sources::Provider;
use super::stores::open_stores;
use crate::protocol::ImportSessionItem;

/// What one provider's files (or stores) hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSummary {
    /// Session files, or store locations (a database, a data directory) for polled providers.
    pub files: u64,
    pub unreadable_files: u64,
    pub sessions: u64,
    pub subagent_sessions: u64,
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
    pub malformed_lines: u64,
    /// Lines read after repair (invalid UTF-8 replaced, raw control characters escaped): their
    /// content is imported, so they are not malformed.
    pub lossy_lines: u64,
    /// Records that are not messages, by record type.
    pub skipped_records: BTreeMap<String, u64>,
    /// Files read whole that gave no session: a format this version does not read, or no
    /// conversation in them (only a header, summaries or injected context).
    pub skipped_files: u64,
    /// Those files by the format marker seen in them (`ParseStats::format_version`: `version
    /// 2.0.14`, `cli_version 0.46.0`, `pre-envelope`, …; `none` when no record marked it).
    pub skipped_file_formats: BTreeMap<String, u64>,
    /// Where the provider was looked for (its roots, databases or data directories).
    pub locations: Vec<std::path::PathBuf>,
    /// Polled providers: each store read (a Cursor database, global or a workspace's; an
    /// OpenCode data directory) with the sessions it was the first to hold.
    pub stores_read: Vec<(std::path::PathBuf, u64)>,
}

/// Parses every file under the roots and reads every store whole. With `items_out`, each item
/// is written to it as one JSON line (lineage filled in as a backfill would). The summary has an
/// entry for every provider, with zeros where nothing was found.
///
/// Errors: only a failed write to `items_out`; unreadable files and stores are counted.
pub fn scan(
    options: &WorkerOptions,
    factory: &ParserFactory,
    mut items_out: Option<&mut dyn Write>,
) -> io::Result<BTreeMap<Provider, ProviderSummary>> {
    scan_each(options, factory, false, &mut |items| {
        if let Some(w) = items_out.as_deref_mut() {
            for item in items {
                // Items are plain data, so the only failure is the writer's (a closed pipe).
                serde_json::to_writer(&mut *w, item).map_err(std::io::Error::from)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    })
}

/// The per-session figures of everything under the roots (`aix scan --sessions`), ordered by
/// provider and session id; see `figures`.
///
/// Errors: none of its own (unreadable files and stores are counted in the summary).
pub fn scan_figures(
    options: &WorkerOptions,
    factory: &ParserFactory,
) -> io::Result<(BTreeMap<Provider, ProviderSummary>, Vec<SessionFigures>)> {
    let mut tally = FigureTally::default();
    let summary = scan_each(options, factory, true, &mut |items| {
        tally.add(items);
        Ok(())
    })?;
    Ok((summary, tally.finish()))
}

/// [`scan`] with each read's items (lineage filled in, stamped as a backfill would) handed to
/// `each`; an error of `each` ends the scan and is returned. With `resend`, the headers of
/// children whose spawn link a later file revealed are handed to `each` again, lineage filled
/// in, as a backfill re-sends them (the summary counts them once).
pub fn scan_each(
    options: &WorkerOptions,
    factory: &ParserFactory,
    resend: bool,
    each: &mut dyn FnMut(&[ImportSessionItem]) -> io::Result<()>,
) -> io::Result<BTreeMap<Provider, ProviderSummary>> {
    let mut out: BTreeMap<Provider, ProviderSummary> = Provider::ALL
        .iter()
        .map(|p| {
            let summary = ProviderSummary {
                locations: locations(options, *p),
                ..ProviderSummary::default()
            };
            (*p, summary)
        })
        .collect();
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
        let mut unlinked = Vec::new();
        if let Some(parser) = state.parser() {
            unlinked = lineage.record(&state.source, &items, parser);
            let stats = parser.stats();
            summary.malformed_lines += stats.malformed_lines;
            summary.lossy_lines += stats.lossy_lines;
            for (kind, n) in &stats.skipped_records {
                *summary.skipped_records.entry(kind.clone()).or_default() += n;
            }
            if items.is_empty() && stats.lines > 0 {
                summary.skipped_files += 1;
                let format = stats.format_version.as_deref().unwrap_or("none");
                *summary
                    .skipped_file_formats
                    .entry(format.to_owned())
                    .or_default() += 1;
            }
        }
        lineage.fill(&state.source, &mut items, &cursor);
        seal_lineage(&mut items);
        mapping::stamp_items(&mut items, provider, options.mappings.of(provider), true);
        count_items(provider, &items, summary, &mut seen, each)?;
        if resend {
            resend_children(unlinked, factory, &mut lineage, options, each)?;
        }
    }
    for mut store in open_stores(options) {
        let provider = store.provider();
        let summary = out.entry(provider).or_default();
        summary.files += 1;
        let before = summary.sessions + summary.subagent_sessions;
        let mut failed_output: Option<io::Error> = None;
        let polled = store.poll(&HashMap::new(), true, &mut |update| {
            let mut items = update.items;
            seal_lineage(&mut items);
            mapping::stamp_items(&mut items, provider, options.mappings.of(provider), true);
            count_items(provider, &items, summary, &mut seen, each).map_err(|e| {
                let kind = e.kind();
                failed_output = Some(e);
                io::Error::from(kind)
            })
        });
        if let Some(e) = failed_output {
            return Err(e);
        }
        if let Err(e) = polled {
            tracing::warn!(path = %store.location().display(), error_kind = ?e.kind(), "store not readable");
            summary.unreadable_files += 1;
        }
        let found = summary.sessions + summary.subagent_sessions - before;
        summary
            .stores_read
            .push((store.location().to_path_buf(), found));
        let stats = store.stats();
        summary.malformed_lines += stats.malformed_lines;
        for (kind, n) in &stats.skipped_records {
            *summary.skipped_records.entry(kind.clone()).or_default() += n;
        }
    }
    Ok(out)
}

/// Re-sends the headers of children whose spawn link a later file revealed (and of their own
/// children in turn) to `each`, lineage filled in, as the backfill does.
fn resend_children(
    mut pending: Vec<super::lineage::Unlinked>,
    factory: &ParserFactory,
    lineage: &mut Lineage,
    options: &WorkerOptions,
    each: &mut dyn FnMut(&[ImportSessionItem]) -> io::Result<()>,
) -> io::Result<()> {
    while let Some((source, cursor)) = pending.pop() {
        let mut child = FileState::new(source, Some(cursor));
        let Ok(Some(update)) = child.resend_header(factory) else {
            continue;
        };
        let mut items = update.items;
        if let Some(parser) = child.parser() {
            pending.extend(lineage.record(&child.source, &items, parser));
        }
        lineage.fill(&child.source, &mut items, &update.cursor);
        seal_lineage(&mut items);
        let provider = child.source.provider;
        mapping::stamp_items(&mut items, provider, options.mappings.of(provider), false);
        each(&items)?;
    }
    Ok(())
}

/// Where `provider` is looked for under `options` (its roots, databases or data directories);
/// with none (a provider enabled only where a default location exists, and none does), the
/// default locations that were tried.
pub fn locations(options: &WorkerOptions, provider: Provider) -> Vec<std::path::PathBuf> {
    let given: Vec<std::path::PathBuf> = match provider {
        Provider::Cursor => options.cursor_dbs.clone(),
        Provider::OpenCode => options.opencode_dirs.clone(),
        _ => roots(options)
            .into_iter()
            .filter(|(p, _)| *p == provider)
            .map(|(_, root)| root)
            .collect(),
    };
    if given.is_empty() {
        return super::config::default_candidates(provider);
    }
    given
}

/// Adds `items` to `summary` (a session counted once, however many items carry it) and writes
/// them to `each`.
fn count_items(
    provider: Provider,
    items: &[ImportSessionItem],
    summary: &mut ProviderSummary,
    seen: &mut HashSet<(Provider, String)>,
    each: &mut dyn FnMut(&[ImportSessionItem]) -> io::Result<()>,
) -> io::Result<()> {
    for item in items {
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
    }
    each(items)
}

/// The human-readable summary printed by `aix scan`: one block per provider; a provider with
/// nothing found is one line.
pub fn render_summary(summary: &BTreeMap<Provider, ProviderSummary>) -> String {
    let mut s = String::new();
    for (provider, p) in summary {
        // Writing to a String cannot fail.
        if p.files == 0 {
            let looked: Vec<String> = p
                .locations
                .iter()
                .map(|l| l.display().to_string())
                .collect();
            let _ = if looked.is_empty() {
                writeln!(
                    s,
                    "{}: nothing found (no location to look in: $HOME is not set)",
                    provider.as_str()
                )
            } else {
                writeln!(
                    s,
                    "{}: nothing found in {}",
                    provider.as_str(),
                    looked.join(", ")
                )
            };
            continue;
        }
        let _ = writeln!(s, "{}:", provider.as_str());
        let label = if matches!(provider, Provider::Cursor | Provider::OpenCode) {
            "stores"
        } else {
            "files"
        };
        let _ = writeln!(s, "  {label:<19}{}", p.files);
        for (location, sessions) in &p.stores_read {
            let noun = if *sessions == 1 {
                "session"
            } else {
                "sessions"
            };
            let _ = writeln!(s, "    {} ({sessions} {noun})", location.display());
        }
        if p.unreadable_files > 0 {
            let _ = writeln!(s, "  unreadable files   {}", p.unreadable_files);
        }
        let _ = writeln!(s, "  sessions           {}", p.sessions);
        let _ = writeln!(s, "  subagent sessions  {}", p.subagent_sessions);
        let _ = writeln!(s, "  turns              {}", p.turns);
        let _ = writeln!(s, "  messages           {}", p.messages);
        let _ = writeln!(s, "  tool calls         {}", p.tool_calls);
        let _ = writeln!(s, "  malformed lines    {}", p.malformed_lines);
        if p.skipped_files > 0 {
            let _ = writeln!(s, "  files, no session  {}", p.skipped_files);
            for (format, n) in &p.skipped_file_formats {
                let _ = writeln!(s, "    {format:<24} {n}");
            }
        }
        if p.lossy_lines > 0 {
            let _ = writeln!(s, "  repaired lines     {}", p.lossy_lines);
        }
        let skipped: u64 = p.skipped_records.values().sum();
        let _ = writeln!(s, "  skipped records    {skipped}");
        for (kind, n) in &p.skipped_records {
            let _ = writeln!(s, "    {kind:<24} {n}");
        }
    }
    s
}
