//! The ledger side of `nex import verify`: per imported session, what the ledger holds (turns,
//! messages, tool calls, spawn links, token sums, lineage columns), read through a read-only
//! connection, and the lineage links that name nothing it holds.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OpenFlags, params};

use super::{DanglingLineage, SOURCE, VerifyError};
use crate::import::session_label;

/// The ledger opened read-only (a running daemon is not disturbed), with the stored-text
/// functions; a ledger older than schema 3 cannot be compared.
pub(super) fn open_ledger(path: &std::path::Path) -> Result<Connection, VerifyError> {
    if !path.exists() {
        return Err(VerifyError::LedgerNotFound(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    crate::ledger::text::register(&conn)?;
    let has_label: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'session_label'",
        [],
        |r| r.get(0),
    )?;
    if !has_label {
        return Err(VerifyError::LedgerSchemaOlder(path.to_path_buf()));
    }
    Ok(conn)
}

/// What the ledger holds for one imported session.
#[derive(Debug, Clone, Default)]
pub(super) struct LedgerSession {
    pub(super) label: String,
    pub(super) is_subagent: bool,
    pub(super) parent_session_label: Option<String>,
    pub(super) spawn_tool_call_id: Option<String>,
    pub(super) turns: u64,
    pub(super) messages: u64,
    pub(super) tool_calls: u64,
    pub(super) spawn_links: u64,
    pub(super) tokens: [i64; 6],
}

/// The ledger's sessions by (provider, source session id).
pub(super) struct LedgerFigures {
    pub(super) sessions: BTreeMap<(String, String), LedgerSession>,
    /// Lineage links naming nothing, by provider.
    pub(super) dangling: BTreeMap<String, Vec<DanglingLineage>>,
}

impl LedgerFigures {
    pub(super) fn read(conn: &Connection) -> Result<Self, VerifyError> {
        let mut sessions = BTreeMap::new();
        let mut by_label: HashMap<String, (String, String)> = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT si.source_provider, si.source_session_id, si.session_label,
                    COALESCE(s.is_subagent, 0), s.parent_session_label, s.spawn_tool_call_id
             FROM session_imports si LEFT JOIN sessions s ON s.label = si.session_label
             WHERE si.source = ?1",
        )?;
        let mut rows = stmt.query(params![SOURCE])?;
        while let Some(r) = rows.next()? {
            let key: (String, String) = (r.get(0)?, r.get(1)?);
            let s = LedgerSession {
                label: r.get(2)?,
                is_subagent: r.get::<_, i64>(3)? != 0,
                parent_session_label: r.get(4)?,
                spawn_tool_call_id: r.get(5)?,
                ..LedgerSession::default()
            };
            by_label.insert(s.label.clone(), key.clone());
            sessions.insert(key, s);
        }
        let mut with =
            |sql: &str,
             apply: &dyn Fn(&mut LedgerSession, &rusqlite::Row<'_>) -> rusqlite::Result<()>|
             -> Result<(), VerifyError> {
                let mut stmt = conn.prepare(sql)?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let label: String = r.get(0)?;
                    if let Some(s) = by_label.get(&label).and_then(|k| sessions.get_mut(k)) {
                        apply(s, r)?;
                    }
                }
                Ok(())
            };
        with(
            "SELECT session_label, COUNT(*), SUM(COALESCE(input_tokens, 0)),
                SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cached_input_tokens, 0)),
                SUM(COALESCE(cache_write_tokens, 0)), SUM(COALESCE(reasoning_tokens, 0)),
                SUM(COALESCE(total_tokens, 0))
             FROM turns WHERE session_label IS NOT NULL GROUP BY session_label",
            &|s, r| {
                s.turns = r.get::<_, i64>(1)? as u64;
                for i in 0..6 {
                    s.tokens[i] = r.get(2 + i)?;
                }
                Ok(())
            },
        )?;
        with(
            "SELECT session_label, COUNT(*) FROM messages
             WHERE session_label IS NOT NULL GROUP BY session_label",
            &|s, r| {
                s.messages = r.get::<_, i64>(1)? as u64;
                Ok(())
            },
        )?;
        with(
            "SELECT session_label, COUNT(*), SUM(spawned_session_label IS NOT NULL)
             FROM tool_calls WHERE session_label IS NOT NULL GROUP BY session_label",
            &|s, r| {
                s.tool_calls = r.get::<_, i64>(1)? as u64;
                s.spawn_links = r.get::<_, i64>(2)? as u64;
                Ok(())
            },
        )?;
        let dangling = Self::read_dangling(conn)?;
        Ok(Self { sessions, dangling })
    }

    /// Each imported session's parent label with no session row, and spawning call id with no
    /// tool call row.
    fn read_dangling(
        conn: &Connection,
    ) -> Result<BTreeMap<String, Vec<DanglingLineage>>, VerifyError> {
        let mut stmt = conn.prepare(
            "SELECT si.source_provider, si.source_session_id, s.label, s.parent_session_label,
                    s.spawn_tool_call_id,
                    s.parent_session_label IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM sessions p WHERE p.label = s.parent_session_label),
                    s.spawn_tool_call_id IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM tool_calls t WHERE t.id = s.spawn_tool_call_id)
             FROM session_imports si JOIN sessions s ON s.label = si.session_label
             WHERE si.source = ?1
               AND (s.parent_session_label IS NOT NULL OR s.spawn_tool_call_id IS NOT NULL)
             ORDER BY s.label",
        )?;
        let mut rows = stmt.query(params![SOURCE])?;
        let mut out: BTreeMap<String, Vec<DanglingLineage>> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let provider: String = r.get(0)?;
            for (field, value, missing) in [
                (
                    "parent_session_label",
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, bool>(5)?,
                ),
                (
                    "spawn_tool_call_id",
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, bool>(6)?,
                ),
            ] {
                if let (true, Some(names)) = (missing, value) {
                    out.entry(provider.clone())
                        .or_default()
                        .push(DanglingLineage {
                            label: r.get(2)?,
                            source_session_id: r.get(1)?,
                            field: field.to_owned(),
                            names,
                        });
                }
            }
        }
        Ok(out)
    }

    /// The label a session has or would get (its import's, else the deterministic one).
    pub(super) fn label_of(&self, provider: &str, session_id: &str) -> String {
        self.sessions
            .get(&(provider.to_owned(), session_id.to_owned()))
            .map_or_else(
                || session_label(SOURCE, provider, session_id),
                |s| s.label.clone(),
            )
    }
}
