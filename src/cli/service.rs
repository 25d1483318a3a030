//! `nex service install|uninstall|status [--json]`: run `nex daemon` at login under the
//! platform's service manager. On Linux a systemd user unit
//! (`~/.config/systemd/user/nex.service`, or under `$XDG_CONFIG_HOME`), on macOS a launchd
//! agent (`~/Library/LaunchAgents/dev.nex.daemon.plist`). Both run this executable's absolute
//! path with `daemon`, restart it when it fails (not when it was stopped), and pass `NEX_HOME`
//! through when it is set. `--print` shows the file without writing it.
//!
//! `install` and `uninstall` only write or remove the file and print the one command that
//! (un)loads it: enabling a service is the user's step, and a test must never touch the
//! machine's service manager.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::control_ctx::{errln, outln, print_json};

#[derive(Debug, Clone, Subcommand)]
pub enum ServiceCommand {
    /// Write the user service that runs `nex daemon` at login (systemd on Linux, launchd on
    /// macOS).
    Install(ServiceArgs),
    /// Remove the user service file.
    Uninstall(ServiceArgs),
    /// Whether the service file is installed and, where the manager can tell, running.
    Status(ServiceArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Service manager (default: launchd on macOS, systemd elsewhere).
    #[arg(long, value_enum)]
    pub manager: Option<Manager>,
    /// `install`: print the service file on stdout instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Print one line of JSON: `{"manager","path","installed","active"}`.
    #[arg(long)]
    pub json: bool,
}

/// The service managers nex writes files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Manager {
    Systemd,
    Launchd,
}

/// The launchd label (and plist file stem).
pub const LAUNCHD_LABEL: &str = "dev.nex.daemon";
/// The systemd unit name.
pub const SYSTEMD_UNIT: &str = "nex.service";

/// `nex service ... --json`.
#[derive(Debug, Serialize)]
struct ServiceOutput {
    manager: Manager,
    path: String,
    /// Whether the service file exists (after the command).
    installed: bool,
    /// The manager's word on the service (`active`, `inactive`, `failed`, …; launchd: `loaded`
    /// or `not_loaded`); `null` when its tool is absent or cannot tell.
    active: Option<String>,
}

/// What the generated file runs and passes.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// This executable, absolute.
    pub nex: PathBuf,
    /// `NEX_HOME`, when set.
    pub nex_home: Option<PathBuf>,
    /// Where launchd writes the daemon's stderr.
    pub log: PathBuf,
}

impl Manager {
    fn default_for_os() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }

    /// Where the file goes, from `HOME` (and `XDG_CONFIG_HOME` for systemd).
    fn path(self, home: &Path) -> PathBuf {
        match self {
            Manager::Systemd => std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".config"))
                .join("systemd/user")
                .join(SYSTEMD_UNIT),
            Manager::Launchd => home
                .join("Library/LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist")),
        }
    }

    fn render(self, spec: &ServiceSpec) -> String {
        match self {
            Manager::Systemd => systemd_unit(spec),
            Manager::Launchd => launchd_plist(spec),
        }
    }

    /// The command that loads (`true`) or unloads the installed file.
    fn load_hint(self, path: &Path, load: bool) -> String {
        match (self, load) {
            (Manager::Systemd, true) => {
                format!(
                    "systemctl --user daemon-reload && systemctl --user enable --now {SYSTEMD_UNIT}"
                )
            }
            (Manager::Systemd, false) => {
                format!("systemctl --user disable --now {SYSTEMD_UNIT}")
            }
            (Manager::Launchd, true) => format!("launchctl load -w {}", path.display()),
            (Manager::Launchd, false) => format!("launchctl unload -w {}", path.display()),
        }
    }

    /// Asks the manager, when its tool exists; `None` otherwise.
    fn active(self) -> Option<String> {
        let out = match self {
            Manager::Systemd => Command::new("systemctl")
                .args(["--user", "is-active", SYSTEMD_UNIT])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output(),
            Manager::Launchd => {
                let loaded = Command::new("launchctl")
                    .args(["list", LAUNCHD_LABEL])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .ok()?
                    .success();
                return Some(if loaded { "loaded" } else { "not_loaded" }.to_owned());
            }
        }
        .ok()?;
        // `is-active` prints one word (`active`, `inactive`, `failed`, …); nothing when the
        // user manager cannot be reached.
        let word = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (!word.is_empty()).then_some(word)
    }
}

/// A value for a systemd unit line: double-quoted, with `\`, `"` escaped and `%` doubled
/// (specifiers), so paths with spaces or percent signs survive.
fn systemd_quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

/// The systemd user unit.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let mut env = String::new();
    if let Some(home) = &spec.nex_home {
        env.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("NEX_HOME={}", home.display()))
        ));
    }
    format!(
        "# Written by `nex service install`; `nex service uninstall` removes it.\n\
         [Unit]\n\
         Description=nex: import AI coding agents' sessions into the ledger\n\
         After=default.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={} daemon\n\
         {env}\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        systemd_quote(&spec.nex.display().to_string())
    )
}

fn xml_escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd agent: started at load, restarted when it exits unsuccessfully.
pub fn launchd_plist(spec: &ServiceSpec) -> String {
    let s = |p: &Path| xml_escape(&p.display().to_string());
    let env = match &spec.nex_home {
        Some(home) => format!(
            "  <key>EnvironmentVariables</key>\n  <dict>\n    <key>NEX_HOME</key>\n    <string>{}</string>\n  </dict>\n",
            s(home)
        ),
        None => String::new(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `nex service install`; `nex service uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n  <key>Label</key>\n  <string>{LAUNCHD_LABEL}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n    <string>{}</string>\n    <string>daemon</string>\n  </array>\n\
         {env}\
         \x20 <key>RunAtLoad</key>\n  <true/>\n\
         \x20 <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n\
         \x20 <key>StandardErrorPath</key>\n  <string>{}</string>\n\
         </dict>\n\
         </plist>\n",
        s(&spec.nex),
        s(&spec.log)
    )
}

/// The paths the command needs, or a message why they are unknown.
fn context(args: &ServiceArgs) -> Result<(Manager, PathBuf, ServiceSpec), String> {
    let manager = args.manager.unwrap_or_else(Manager::default_for_os);
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or("HOME is not set")?;
    let nex = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot find this executable's path: {e}"))?;
    let nex_home = std::env::var_os("NEX_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .map(|h| std::path::absolute(&h).unwrap_or(h));
    let log = home.join("Library/Logs/nex-daemon.log");
    Ok((
        manager,
        manager.path(&home),
        ServiceSpec { nex, nex_home, log },
    ))
}

fn report(args: &ServiceArgs, manager: Manager, path: &Path, text: &str) {
    let installed = path.exists();
    if args.json {
        print_json(&ServiceOutput {
            manager,
            path: path.display().to_string(),
            installed,
            active: manager.active(),
        });
    } else {
        outln!("{text}");
    }
}

fn failed(message: &str, code: &str) -> ExitCode {
    errln!("nex: {message} [{code}]");
    ExitCode::FAILURE
}

/// `nex service install [--print]`.
pub fn install(args: ServiceArgs) -> ExitCode {
    let (manager, path, spec) = match context(&args) {
        Ok(c) => c,
        Err(m) => return failed(&m, "service_unresolved"),
    };
    let text = manager.render(&spec);
    if args.print {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, &text));
    if let Err(e) = written {
        return failed(
            &format!("cannot write {}: {e}", path.display()),
            "io_failed",
        );
    }
    report(
        &args,
        manager,
        &path,
        &format!(
            "installed {}\nstart it now and at every login with: {}",
            path.display(),
            manager.load_hint(&path, true)
        ),
    );
    ExitCode::SUCCESS
}

/// `nex service uninstall`: removes the file (absent already: says so, exit 0).
pub fn uninstall(args: ServiceArgs) -> ExitCode {
    let (manager, path, _) = match context(&args) {
        Ok(c) => c,
        Err(m) => return failed(&m, "service_unresolved"),
    };
    let text = match std::fs::remove_file(&path) {
        Ok(()) => format!(
            "removed {}\nif it is running, stop it with: {}",
            path.display(),
            manager.load_hint(&path, false)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("not installed ({} does not exist)", path.display())
        }
        Err(e) => {
            return failed(
                &format!("cannot remove {}: {e}", path.display()),
                "io_failed",
            );
        }
    };
    report(&args, manager, &path, &text);
    ExitCode::SUCCESS
}

/// `nex service status`.
pub fn status(args: ServiceArgs) -> ExitCode {
    let (manager, path, _) = match context(&args) {
        Ok(c) => c,
        Err(m) => return failed(&m, "service_unresolved"),
    };
    let installed = if path.exists() {
        format!("installed: {}", path.display())
    } else {
        format!("not installed ({} does not exist)", path.display())
    };
    let text = match manager.active() {
        Some(word) => format!("{installed}\n{}: {word}", manager_name(manager)),
        None => installed,
    };
    report(&args, manager, &path, &text);
    ExitCode::SUCCESS
}

fn manager_name(m: Manager) -> &'static str {
    match m {
        Manager::Systemd => "systemd",
        Manager::Launchd => "launchd",
    }
}
