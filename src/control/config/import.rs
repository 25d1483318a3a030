//! `[import]` of `config.toml`: the worker, the sources it reads, timings and restart bounds,
//! each checked against its range.

use serde::Deserialize;

use super::keys::unknown;
use crate::control::error::ControlError;
use crate::control::worker::WorkerCommand;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImportSection {
    pub enabled: Option<bool>,
    pub tail: Option<bool>,
    pub auto_retry: Option<bool>,
    pub worker_cmd: Option<WorkerCmdSpec>,
    pub claude_config_dir: Option<String>,
    pub codex_home: Option<String>,
    pub cursor_db: Option<String>,
    pub opencode_dir: Option<String>,
    pub gemini_dir: Option<String>,
    pub probe_healthy_ms: Option<u64>,
    pub probe_degraded_ms: Option<u64>,
    pub probe_disconnected_ms: Option<u64>,
    pub health_timeout_ms: Option<u64>,
    pub start_timeout_ms: Option<u64>,
    pub stop_grace_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub max_restarts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub reset_after_ms: Option<u64>,
    pub job_max_retries: Option<u32>,
}

/// `worker_cmd` as one string or as an argv array.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WorkerCmdSpec {
    Line(String),
    Argv(Vec<String>),
}

impl WorkerCmdSpec {
    pub(super) fn to_command(&self) -> Result<WorkerCommand, ControlError> {
        match self {
            WorkerCmdSpec::Line(line) => WorkerCommand::parse(line),
            WorkerCmdSpec::Argv(argv) => WorkerCommand::from_argv(argv.clone()),
        }
    }
}

/// Keys of `[import]`.
pub(super) const IMPORT_KEYS: &[&str] = &[
    "enabled",
    "tail",
    "auto_retry",
    "worker_cmd",
    "claude_config_dir",
    "codex_home",
    "cursor_db",
    "opencode_dir",
    "gemini_dir",
    "probe_healthy_ms",
    "probe_degraded_ms",
    "probe_disconnected_ms",
    "health_timeout_ms",
    "start_timeout_ms",
    "stop_grace_ms",
    "shutdown_grace_ms",
    "max_restarts",
    "backoff_base_ms",
    "backoff_max_ms",
    "reset_after_ms",
    "job_max_retries",
];

/// The keys of an `[import]` table.
pub(super) fn check_keys(section: &toml::Table) -> Result<(), String> {
    for key in section.keys() {
        if !IMPORT_KEYS.contains(&key.as_str()) {
            return Err(unknown(key, "import.", IMPORT_KEYS));
        }
    }
    Ok(())
}

impl ImportSection {
    /// Every timing and bound within its range; the message names the key and the range.
    pub(super) fn check_ranges(&self) -> Result<(), String> {
        const HOUR: u64 = 3_600_000;
        const DAY: u64 = 24 * HOUR;
        let ms: [(&str, Option<u64>, u64, u64); 10] = [
            ("probe_healthy_ms", self.probe_healthy_ms, 100, DAY),
            ("probe_degraded_ms", self.probe_degraded_ms, 100, DAY),
            (
                "probe_disconnected_ms",
                self.probe_disconnected_ms,
                100,
                DAY,
            ),
            ("health_timeout_ms", self.health_timeout_ms, 100, HOUR),
            ("start_timeout_ms", self.start_timeout_ms, 100, HOUR),
            ("stop_grace_ms", self.stop_grace_ms, 100, HOUR),
            // Workers are killed at shutdown_grace - 2 s: leave them at least a second.
            ("shutdown_grace_ms", self.shutdown_grace_ms, 3_000, HOUR),
            ("backoff_base_ms", self.backoff_base_ms, 10, DAY),
            ("backoff_max_ms", self.backoff_max_ms, 10, DAY),
            ("reset_after_ms", self.reset_after_ms, 1_000, 7 * DAY),
        ];
        for (key, value, min, max) in ms {
            if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
                return Err(format!(
                    "import.{key} = {v} is out of range: allowed {min} to {max} (milliseconds)"
                ));
            }
        }
        let counts: [(&str, Option<u32>, u32); 2] = [
            ("max_restarts", self.max_restarts, 1_000),
            ("job_max_retries", self.job_max_retries, 100),
        ];
        for (key, value, max) in counts {
            if let Some(v) = value.filter(|v| *v > max) {
                return Err(format!(
                    "import.{key} = {v} is out of range: allowed 0 to {max}"
                ));
            }
        }
        if let (Some(base), Some(max)) = (self.backoff_base_ms, self.backoff_max_ms)
            && max < base
        {
            return Err(format!(
                "import.backoff_max_ms = {max} is below import.backoff_base_ms = {base}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::read_config;

    #[test]
    fn timings_and_bounds_out_of_range_are_errors_with_the_range() {
        let e = read_config("[import]\nstart_timeout_ms = 0\n").unwrap_err();
        assert!(
            e.contains("import.start_timeout_ms = 0 is out of range: allowed 100 to 3600000"),
            "{e}"
        );
        let e = read_config("[import]\nshutdown_grace_ms = 1000\n").unwrap_err();
        assert!(e.contains("allowed 3000 to"), "{e}");
        let e = read_config("[import]\nmax_restarts = 5000\n").unwrap_err();
        assert!(
            e.contains("import.max_restarts = 5000 is out of range: allowed 0 to 1000"),
            "{e}"
        );
        let e = read_config("[import]\nbackoff_base_ms = 500\nbackoff_max_ms = 100\n").unwrap_err();
        assert!(e.contains("below import.backoff_base_ms"), "{e}");
        let e = read_config("[import]\nstart_timeout_ms = -1\n").unwrap_err();
        assert!(
            e.contains("start_timeout_ms") || e.contains("invalid value"),
            "{e}"
        );
        assert!(read_config("[import]\nstart_timeout_ms = 100\nmax_restarts = 0\n").is_ok());
    }
}
