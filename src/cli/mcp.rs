//! `nex mcp [--home DIR] [--ledger PATH]`: the MCP server on stdin/stdout ([`crate::mcp`]).
//! Logs go to stderr (stdout is the protocol's).

use std::process::ExitCode;

use clap::Args;

use super::control_ctx::errln;
use super::search::ReadLedgerArgs;
use crate::control::config::ConfigFile;
use crate::protocol::Code;
use crate::query::prices::PriceTable;

#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub ledger: ReadLedgerArgs,
    /// About how much JSON one tool result may hold before it is cut and continued by a cursor.
    #[arg(long, value_name = "BYTES", default_value_t = crate::mcp::MAX_RESULT_BYTES)]
    pub max_result_bytes: usize,
}

pub fn run(args: McpArgs) -> ExitCode {
    let path = match args.ledger.path() {
        Ok(path) => path,
        Err(e) => return super::control_ctx::fail(&e),
    };
    // Prices as `nex usage` takes them: the table with the `[prices]` of config.toml.
    let prices = match args
        .ledger
        .config_file()
        .and_then(|file| ConfigFile::read(&file))
    {
        Ok(config) => PriceTable::with_overrides(&config.prices),
        Err(e) => return super::control_ctx::fail(&e),
    };
    let rank_cap = match crate::query::search::rank_cap_from_env() {
        Ok(cap) => cap,
        Err(e) => {
            errln!("nex: {e} [{}]", e.code());
            return ExitCode::FAILURE;
        }
    };
    // `[replica]` for get_usage's `replica` (the settings' other parts are the daemon's).
    let control = super::control_ctx::ControlArgs {
        home: args.ledger.home.clone(),
        ..Default::default()
    };
    let replica = match control.settings(false) {
        Ok(settings) => settings.replica,
        Err(e) => return super::control_ctx::fail(&e),
    };
    let server = crate::mcp::NexMcp::new(path, args.max_result_bytes, prices)
        .with_rank_cap(rank_cap)
        .with_replica(replica);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!(
                "nex: cannot start the runtime: {e} [{}]",
                Code::InternalRuntimeFailed
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::mcp::serve_stdio(server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("nex: mcp: {e} [{}]", Code::IoFailed);
            ExitCode::FAILURE
        }
    }
}
