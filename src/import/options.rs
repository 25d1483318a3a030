//! Service options: what the caller (daemon, CLI, tests) decides rather than the request.

/// Default bound of an assembled chunked item once inflated.
pub const DEFAULT_MAX_INFLATED_BYTES: u64 = 1024 * 1024 * 1024;
/// Staged chunk parts older than this are pruned (baseline: 7 days).
pub const DEFAULT_CHUNK_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// The persona of a request that names none and whose caller sets none.
pub const DEFAULT_PERSONA: &str = "main";

/// Options of [`import`](super::import) and [`chunk`](super::chunk).
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Overrides the request's `personaId` (flag/config of the operator); the effective
    /// persona is this, else the request's, else `main`.
    pub persona_id: Option<String>,
    /// An upload whose payload inflates past this is refused with `chunk_payload_too_large`.
    pub max_inflated_bytes: u64,
    /// Age after which staged chunk parts are pruned.
    pub chunk_ttl_ms: i64,
    /// Source of "now" in epoch milliseconds (fixed in tests).
    pub clock: fn() -> i64,
    /// Each item runs in its own savepoint (rule 5; the default). Off, a failed item may leave
    /// part of its rows in the transaction: only for a caller that rolls the whole
    /// transaction back when any item fails (the ledger writer's first attempt at a batch,
    /// `pipeline::apply`, which then applies it again with savepoints).
    pub item_savepoints: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            persona_id: None,
            max_inflated_bytes: DEFAULT_MAX_INFLATED_BYTES,
            chunk_ttl_ms: DEFAULT_CHUNK_TTL_MS,
            clock: system_now_ms,
            item_savepoints: true,
        }
    }
}

impl ImportOptions {
    /// The effective persona for a request carrying `request_persona`.
    pub fn resolve_persona(&self, request_persona: Option<&str>) -> String {
        [self.persona_id.as_deref(), request_persona]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PERSONA)
            .to_owned()
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// Wall-clock epoch milliseconds (0 if the clock is before 1970).
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
