//! Command-line parsing and dispatch. Each command calls the library,
//! prints data to stdout and messages to stderr, and returns an exit code;
//! errors map to exit codes in one place ([`credstore::Error::exit_code`]).

/// `eprintln!` for the CLI: a message on stderr that never panics when
/// stderr is full or gone (std's macro would). Shadows std's in every
/// module below.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::cli::message(format_args!($($arg)*), true)
    };
}

/// `eprint!` without the newline, never panicking either.
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::cli::message(format_args!($($arg)*), false)
    };
}

mod advice;
mod agent;
mod backends;
mod commands;
mod completion;
mod context;
mod daemon;
mod doctor;
mod exec;
mod migrate;
mod profiles;
mod progress;
mod report;

use clap::{Args, Parser, Subcommand};
use context::Context;
use credstore::stored::looks_like_jwt;
use credstore::Error;
use std::process::ExitCode;

/// Keeps an agent's credential safe and hands the right one to the program
/// that needs it: environment first, then the selected backend.
#[derive(Debug, Parser)]
#[command(name = "credstore", version, about, long_about = None)]
pub struct Cli {
    /// Where credentials are stored: auto, file, keychain, memory, vault,
    /// sealed [env: CREDSTORE_BACKEND] [default: the profile's in config.toml, else
    /// auto]
    #[arg(long, global = true, value_name = "NAME", add = completion::backends())]
    pub backend: Option<String>,

    /// The credential slot to use [env: CREDSTORE_PROFILE] [default: default]
    #[arg(long, global = true, value_name = "NAME", add = completion::profiles())]
    pub profile: Option<String>,

    /// Ignore CREDSTORE_API_KEY / CREDSTORE_AGENT_IDENTITY (and their _FILE
    /// variants): use only the stored credential
    #[arg(long, global = true)]
    pub no_env: bool,

    /// Do not ask the signing agent named by CREDSTORE_AGENT_SOCK: resolve
    /// the credential in this process
    #[arg(long, global = true)]
    pub no_agent: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a credential from stdin, validate it and store it
    #[command(
        after_long_help = "Examples:\n  credstore login --with-agent-identity                 # paste, input hidden\n  credstore login --with-api-key --backend file < key.txt\n  credstore --profile work login --with-agent-identity --backend keychain"
    )]
    Login(LoginArgs),
    /// Remove the profile's stored credential (the environment is untouched)
    #[command(
        after_long_help = "Examples:\n  credstore logout\n  credstore --profile work logout\n  credstore logout --all"
    )]
    Logout {
        /// Remove every profile's stored credential that `credstore profiles`
        /// lists (with --backend: only those in that backend)
        #[arg(long)]
        all: bool,
    },
    /// Show the active credential: source, kind, claims, expiry, warnings
    #[command(
        after_long_help = "Examples:\n  credstore status\n  credstore status --json | jq .identity.expires_in_seconds\n  credstore status --all"
    )]
    Status {
        /// Print one JSON document on stdout
        #[arg(long)]
        json: bool,
        /// The status of every profile that holds a credential somewhere
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        jwks: agent::JwksArgs,
    },
    /// List every profile stored in every reachable backend (file, keychain,
    /// Vault when configured): kind, backend, expiry, and which copy is used
    #[command(visible_alias = "list")]
    #[command(after_long_help = "Examples:\n  credstore profiles\n  credstore list --json")]
    Profiles {
        /// Print one JSON document on stdout
        #[arg(long)]
        json: bool,
    },
    /// Print the active credential's raw token on stdout, for scripts
    #[command(
        after_long_help = "Examples:\n  curl -H \"Authorization: Bearer $(credstore token)\" https://api.example.com/"
    )]
    Token {
        #[command(flatten)]
        jwks: agent::JwksArgs,
    },
    /// Print the `AgentAssertion …` header value for the active agent identity
    #[command(after_long_help = "Examples:\n  credstore assertion --task-id \"$TASK\"")]
    Assertion(agent::AssertionArgs),
    /// Print the request headers for the active credential (`Name: value`)
    #[command(
        after_long_help = "Examples:\n  credstore headers --task-id \"$TASK\"\n  credstore headers --json"
    )]
    Headers(agent::HeadersArgs),
    /// Register a task for the active agent identity and print its id
    #[command(
        after_long_help = "Examples:\n  TASK=$(credstore register-task --base-url https://auth.example.com)"
    )]
    RegisterTask(agent::RegisterTaskArgs),
    /// Run the signing agent in the foreground: it holds the credential and
    /// answers assertions and headers on a unix socket (mode 0600, your uid
    /// only); the programs that use it never hold the key
    #[command(
        after_long_help = "Examples:\n  credstore agent --log ~/agent.log > ~/agent.env &  sleep 1; . ~/agent.env\n  credstore agent --socket /run/user/1000/credstore/a.sock --max-idle 3600"
    )]
    Agent(daemon::AgentArgs),
    /// Run a command with a signing agent of its own: CREDSTORE_AGENT_SOCK
    /// set, every credential variable removed, the secrets masked in its
    /// output
    #[command(
        after_long_help = "Examples:\n  credstore exec -- python agent.py\n  credstore exec --token-env OPENAI_API_KEY -- some-tool"
    )]
    Exec(exec::ExecArgs),
    /// Move the profile's stored credential to another backend, verify it,
    /// and remove it from where it was (never an environment credential)
    #[command(
        after_long_help = "Examples:\n  credstore migrate --to keychain\n  credstore migrate --from file --to vault"
    )]
    Migrate(migrate::MigrateArgs),
    /// Check every backend, the file permissions and the environment, and
    /// say what to fix (exit 0 healthy, 1 otherwise)
    #[command(after_long_help = "Examples:\n  credstore doctor")]
    Doctor {
        #[command(flatten)]
        jwks: agent::JwksArgs,
    },
    /// Show or change the settings remembered for the profile (config.toml
    /// in the credential directory; no secret is kept there)
    #[command(subcommand)]
    #[command(
        after_long_help = "Examples:\n  credstore config set backend file\n  credstore --profile ci config set env deny\n  credstore config get backend\n  credstore config path"
    )]
    Config(ConfigCommand),
    /// Make the sealed backend's key: an age identity file, or one kept by
    /// systemd-creds
    #[command(subcommand)]
    Seal(SealCommand),
    /// Print the manual page on stdout (`credstore man | man -l -`), or
    /// write one page per command into a directory
    #[command(
        after_long_help = "Examples:\n  credstore man | man -l -\n  credstore man --dir ~/.local/share/man/man1"
    )]
    Man {
        /// Write credstore.1 and credstore-COMMAND.1 into DIR instead
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        dir: Option<std::path::PathBuf>,
    },
    /// Print the shell code that completes credstore's commands, options,
    /// backend and profile names (`source <(credstore completions bash)`)
    #[command(
        after_long_help = "Examples:\n  source <(credstore completions bash)\n  credstore completions fish > ~/.config/fish/completions/credstore.fish"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

/// `config` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the profile's remembered value of KEY (nothing when unset)
    Get {
        /// backend, env, vault-addr, vault-mount, vault-prefix or authapi-base-url
        key: ConfigKey,
    },
    /// Remember VALUE for KEY for the profile
    Set {
        /// backend, env, vault-addr, vault-mount, vault-prefix or authapi-base-url
        key: ConfigKey,
        /// backend: auto, file, keychain, vault or sealed; env: allow, warn or deny
        #[arg(add = completion::config_values())]
        value: String,
    },
    /// Forget the profile's KEY
    Unset {
        /// backend, env, vault-addr, vault-mount, vault-prefix or authapi-base-url
        key: ConfigKey,
    },
    /// Print the config file's path
    Path,
}

/// `seal` actions: the key of the sealed backend (never read from a prompt,
/// never kept beside the sealed files).
#[derive(Debug, Subcommand)]
pub enum SealCommand {
    /// Write a new age identity to FILE (mode 0600; an existing file is
    /// never replaced) and print its public key on stdout; then set
    /// CREDSTORE_SEAL_IDENTITY_FILE=FILE
    Keygen {
        /// Where to write it (not in the credential directory)
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// With CREDSTORE_SEAL=systemd-creds: make a new age identity kept
    /// encrypted by systemd-creds (CREDSTORE_SEAL_CREDENTIAL, default
    /// seal-identity.cred in the credential directory) and print its public key
    Init {
        /// The key systemd-creds encrypts with: auto (host key, and TPM2
        /// where present), host, tpm2, host+tpm2
        #[arg(long, value_name = "KEY", default_value = "auto")]
        with_key: String,
    },
}

/// The keys `config` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ConfigKey {
    /// The backend the profile's credential is read from and stored in
    Backend,
    /// When a variable's credential hides a stored one of another account
    /// or kind: allow, warn (default) or deny
    Env,
    /// The Vault server, when VAULT_ADDR is unset
    VaultAddr,
    /// The Vault KV v2 mount, when CREDSTORE_VAULT_MOUNT is unset
    VaultMount,
    /// The path prefix under the mount, when CREDSTORE_VAULT_PREFIX is unset
    VaultPrefix,
    /// The auth API, when neither --base-url nor CREDSTORE_AUTHAPI_BASE_URL
    /// is given
    AuthapiBaseUrl,
}

impl ConfigKey {
    /// The remembered setting behind the key (not `backend` or `env`,
    /// which have their own arms).
    pub fn setting(self) -> credstore::Result<credstore::config::Setting> {
        use credstore::config::Setting;
        Ok(match self {
            ConfigKey::VaultAddr => Setting::VaultAddr,
            ConfigKey::VaultMount => Setting::VaultMount,
            ConfigKey::VaultPrefix => Setting::VaultPrefix,
            ConfigKey::AuthapiBaseUrl => Setting::AuthapiBaseUrl,
            ConfigKey::Backend | ConfigKey::Env => {
                return Err(Error::Usage(
                    "backend and env are set with their own words".into(),
                ))
            }
        })
    }
}

/// `login` options. The secret itself is read from stdin only, never argv.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["with_agent_identity", "with_api_key"])))]
pub struct LoginArgs {
    /// Read an agent identity (JWT) from stdin
    #[arg(long)]
    pub with_agent_identity: bool,
    /// Read an API key from stdin
    #[arg(long)]
    pub with_api_key: bool,
    /// Print the summary on stdout as JSON (same fields as `status --json`)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub jwks: agent::JwksArgs,
}

impl Command {
    /// The signature verification options, on the commands that use an
    /// agent identity.
    pub fn jwks(&self) -> Option<&agent::JwksArgs> {
        match self {
            Command::Login(a) => Some(&a.jwks),
            Command::Status { jwks, .. } | Command::Token { jwks } | Command::Doctor { jwks } => {
                Some(jwks)
            }
            Command::Assertion(a) => Some(&a.jwks),
            Command::Headers(a) => Some(&a.jwks),
            Command::RegisterTask(a) => Some(&a.jwks),
            _ => None,
        }
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // A closed 0, 1 or 2 is reopened as /dev/null before any file is
    // opened, so no credential file can take its number.
    credstore_platform::sanitize_std_fds();
    // Before anything can read a secret: no core dump may hold one.
    if let Err(e) = credstore_platform::disable_core_dumps() {
        eprintln!("error: could not turn off core dumps ({e}); refusing to handle secrets");
        return ExitCode::from(4);
    }
    // A shell asking for completions (CREDSTORE_COMPLETE set by the code
    // `credstore completions SHELL` prints): answer and exit.
    completion::answer_if_asked();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = refuse_secret_arguments(&args) {
        return code;
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors exit 2.
            if e.use_stderr() && quotes_unsafe_input(&e) {
                eprintln!(
                    "error: {} — the argument is not repeated here in case it is a secret. \
                     credstore never takes secrets as arguments (other users can see them in \
                     the process list): pipe them on stdin. For more information, try '--help'.",
                    e.kind().as_str().unwrap_or("invalid arguments")
                );
                return ExitCode::from(2);
            }
            if e.use_stderr() {
                let _ = e.print();
                return ExitCode::from(2);
            }
            // Help and version: data on stdout, checked like all output.
            let text = e.render().to_string();
            return match write_stdout(&text) {
                Ok(()) => ExitCode::from(0),
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(exit_code(&err))
                }
            };
        }
    };
    let result = Context::from_cli(&cli).and_then(|ctx| commands::run(&ctx, &cli.command));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match advice::error(&e) {
                Some(advice) => eprintln!("error: {e}. {advice}"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Writes data to stdout; a closed or failing stdout is an I/O error
/// (exit 4), never a panic.
pub(crate) fn write_stdout(text: &str) -> credstore::Result<()> {
    write_stdout_bytes(text.as_bytes())
}

/// Writes bytes straight to file descriptor 1 (no process-wide buffer
/// keeps a copy of a printed token); a closed or failing stdout is an I/O
/// error (exit 4).
pub(crate) fn write_stdout_bytes(bytes: &[u8]) -> credstore::Result<()> {
    use std::io::Write;
    credstore_platform::RawStdout
        .write_all(bytes)
        .map_err(|e| Error::io("writing", "stdout", e))
}

/// Writes a message to stderr; a failure is ignored (there is nowhere
/// left to report it), never a panic.
pub(crate) fn message(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    progress::write_stderr(|err| {
        let _ = err.write_fmt(args);
        if newline {
            let _ = err.write_all(b"\n");
        }
    });
}

/// The one mapping from errors to exit codes.
fn exit_code(e: &Error) -> u8 {
    e.exit_code()
}

/// Whether a clap error would quote an argument that might be a secret.
/// Errors about what is missing or conflicting quote only credstore's own
/// flag names and are shown as they are. Otherwise every quoted argument
/// must look harmless: a flag name (`--profle`), a placeholder (`<SHELL>`)
/// or a short lowercase word (`stauts`, `tcsh`).
fn quotes_unsafe_input(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand
            | ErrorKind::ArgumentConflict
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return false;
    }
    e.context().any(|(kind, value)| {
        matches!(
            kind,
            ContextKind::InvalidArg | ContextKind::InvalidValue | ContextKind::InvalidSubcommand
        ) && !looks_harmless(&value.to_string())
    })
}

fn looks_harmless(arg: &str) -> bool {
    let name = |s: &str, upper: bool| {
        !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| {
                b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'
                    || if upper {
                        b.is_ascii_uppercase()
                    } else {
                        b.is_ascii_lowercase()
                    }
            })
    };
    let placeholder = |s: &str| {
        s.strip_prefix('<')
            .and_then(|s| s.trim_end_matches("...").strip_suffix('>'))
            .is_some_and(|inner| name(inner, true))
    };
    // `--flag`, `-f`, or `--flag <VALUE>` as clap names its own arguments.
    let (head, tail) = arg.split_once(' ').unwrap_or((arg, ""));
    let flag = head
        .strip_prefix("--")
        .or_else(|| head.strip_prefix('-'))
        .is_some_and(|n| name(n, false))
        && (tail.is_empty() || placeholder(tail));
    let word = arg.len() <= 12 && arg.bytes().all(|b| b.is_ascii_lowercase());
    flag || placeholder(arg) || word
}

/// argv is visible to every user on the machine: an argument that looks
/// like a token is refused without being echoed.
fn refuse_secret_arguments(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    let suspicious = args.iter().skip(1).any(|a| {
        let s = a.to_string_lossy();
        let value = s.split_once('=').map_or(&*s, |(_, v)| v);
        looks_like_jwt(value) && value.len() > 40
    });
    if suspicious {
        eprintln!(
            "error: an argument looks like a token. credstore never takes secrets as arguments \
             (other users can see them in the process list); pipe it on stdin instead, e.g. \
             `credstore login --with-agent-identity < token.jwt`"
        );
        return Some(ExitCode::from(2));
    }
    None
}
