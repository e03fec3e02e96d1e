//! `credstore exec [--token-env NAME] [--no-mask] -- CMD ARGS…`: runs a
//! command with a signing agent of its own (or, with `--token-env`, the
//! raw token in one variable), every credential variable removed from its
//! environment, and the secrets masked in its output.

// The masking filter is used by the Unix `exec` (and its tests) only.
#![cfg_attr(not(unix), allow(dead_code))]

use super::context::Context;
use clap::Args;
use credstore::{Credential, Result};
use std::ffi::OsString;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// `exec` options.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Hand the raw token to CMD in the variable NAME instead of an agent,
    /// for tools that need the token itself (an agent identity's token
    /// carries its private key)
    #[arg(long, value_name = "NAME")]
    pub token_env: Option<String>,
    /// Pass CMD's output through untouched (by default the token, the key
    /// and the API key are replaced by <redacted>)
    #[arg(long)]
    pub no_mask: bool,
    /// The command and its arguments (after `--`)
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// What replaces a secret in the output.
pub const REDACTED: &[u8] = b"<redacted>";

/// Secrets shorter than this are not masked (they would mask ordinary
/// text); no valid token or key is this short.
const MIN_PATTERN: usize = 4;

/// A line longer than this is passed on in pieces (all but the tail that
/// could be the start of a secret).
const MAX_LINE: usize = 64 * 1024;

/// Replaces every occurrence of the credential's secrets in a stream.
pub struct Masker {
    /// Longest first, so the whole token wins over one of its segments.
    patterns: Vec<Zeroizing<Vec<u8>>>,
}

impl Masker {
    /// The patterns of `credential`: an API key as it is; for an agent
    /// identity the token, its payload and signature segments, the private
    /// key claim as the token has it (and JSON-escaped, `\/`), the key's
    /// PKCS#8 DER in both versions (v1, v2) and its raw seed, each in
    /// standard and URL-safe base64, padded and not, and the seed in lower
    /// and upper case hex.
    pub fn new(credential: &Credential) -> Masker {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use base64::Engine;
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let token = credential.expose_token();
        patterns.push(Zeroizing::new(token.as_bytes().to_vec()));
        if let Some(id) = credential.agent_identity() {
            for segment in token.split('.').skip(1) {
                patterns.push(Zeroizing::new(segment.as_bytes().to_vec()));
            }
            // The claim's own string, whatever its encoding.
            if let Some(claim) = key_claim(token) {
                patterns.push(Zeroizing::new(claim.replace('/', "\\/").into_bytes()));
                patterns.push(Zeroizing::new(claim.as_bytes().to_vec()));
            }
            let key = id.signing_key();
            let seed = Zeroizing::new(key.to_bytes());
            let mut forms: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(seed.to_vec())];
            // PKCS#8 v1 (RFC 8410): this prefix, then the seed.
            let mut v1 = Zeroizing::new(PKCS8_V1_PREFIX.to_vec());
            v1.extend_from_slice(&seed[..]);
            forms.push(v1);
            if let Ok(der) = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(key) {
                forms.push(Zeroizing::new(der.as_bytes().to_vec()));
            }
            for bytes in &forms {
                for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                    let text = Zeroizing::new(engine.encode(&bytes[..]));
                    if text.contains('/') {
                        patterns.push(Zeroizing::new(text.replace('/', "\\/").into_bytes()));
                    }
                    patterns.push(Zeroizing::new(text.as_bytes().to_vec()));
                }
            }
            let mut lower = Zeroizing::new(Vec::with_capacity(64));
            let mut upper = Zeroizing::new(Vec::with_capacity(64));
            for b in seed.iter() {
                lower.extend_from_slice(format!("{b:02x}").as_bytes());
                upper.extend_from_slice(format!("{b:02X}").as_bytes());
            }
            patterns.push(lower);
            patterns.push(upper);
        }
        patterns.retain(|p| p.len() >= MIN_PATTERN);
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        patterns.dedup();
        Masker { patterns }
    }

    fn longest(&self) -> usize {
        self.patterns.first().map_or(0, |p| p.len())
    }

    /// Writes `buf[..]` masked, looking for secrets that start before
    /// `limit`; returns how many bytes of `buf` were consumed (at least
    /// `limit`, more when a secret starting before it runs past it).
    fn write_masked(
        &self,
        buf: &[u8],
        limit: usize,
        out: &mut dyn Write,
    ) -> std::io::Result<usize> {
        let mut i = 0;
        let mut run = 0;
        while i < limit {
            if let Some(p) = self.patterns.iter().find(|p| buf[i..].starts_with(p)) {
                out.write_all(&buf[run..i])?;
                out.write_all(REDACTED)?;
                i += p.len();
                run = i;
            } else {
                i += 1;
            }
        }
        out.write_all(&buf[run..i.min(buf.len())])?;
        Ok(i)
    }

    /// Copies `from` to `to` line by line, masked. Every line is written as
    /// soon as its newline arrives; a line longer than 64 KiB is passed on
    /// in pieces. A failing `to` (closed stdout) stops the writing, not the
    /// reading, so the command never blocks on a full pipe.
    pub fn pump(&self, from: &mut dyn Read, to: &mut dyn Write) {
        const CHUNK: usize = 8 * 1024;
        // Fixed capacity, never grown: output can hold secrets, and a grown
        // vector would leave a stale copy behind. Wiped on drop.
        let mut pending = Zeroizing::new(Vec::with_capacity(MAX_LINE + CHUNK));
        let mut chunk = Zeroizing::new(vec![0u8; CHUNK]);
        let mut to_ok = true;
        let keep = self.longest().saturating_sub(1);
        loop {
            let n = match from.read(&mut chunk[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                let end = start + nl + 1;
                if to_ok {
                    to_ok = self
                        .write_masked(&pending[start..end], end - start, to)
                        .and_then(|_| to.flush())
                        .is_ok();
                }
                start = end;
            }
            if pending.len() - start >= MAX_LINE {
                let limit = pending.len() - start - keep;
                let used = if to_ok {
                    match self.write_masked(&pending[start..], limit, to) {
                        Ok(used) => used,
                        Err(_) => {
                            to_ok = false;
                            limit
                        }
                    }
                } else {
                    limit
                };
                start += used;
            }
            let len = pending.len();
            pending.copy_within(start..len, 0);
            pending[len - start..].iter_mut().for_each(|b| *b = 0);
            pending.truncate(len - start);
        }
        if to_ok && !pending.is_empty() {
            let _ = self
                .write_masked(&pending, pending.len(), to)
                .and_then(|_| to.flush());
        }
    }
}

/// The DER of a PKCS#8 v1 Ed25519 private key before its 32-byte seed.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The `agent_private_key` claim of a token's payload, as it is written.
fn key_claim(token: &str) -> Option<Zeroizing<String>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Payload {
        agent_private_key: Option<String>,
    }
    let segment = token.split('.').nth(1)?;
    let json = Zeroizing::new(URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?);
    let payload: Payload = serde_json::from_slice(&json).ok()?;
    payload.agent_private_key.map(Zeroizing::new)
}

/// A name a shell would accept for a variable.
fn valid_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `credstore exec`.
#[cfg(not(unix))]
pub fn exec(_ctx: &Context, _args: &ExecArgs) -> Result<u8> {
    Err(super::daemon::unsupported("exec"))
}

#[cfg(unix)]
pub use unix::exec;

#[cfg(unix)]
mod unix {
    use super::*;
    use credstore::Error;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// `credstore exec`: see the module.
    pub fn exec(ctx: &Context, args: &ExecArgs) -> Result<u8> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let Some((program, rest)) = args.command.split_first() else {
            return Err(Error::Usage("no command to run: give it after --".into()));
        };
        if let Some(name) = &args.token_env {
            if !valid_variable_name(name) {
                return Err(Error::Usage(format!(
                    "--token-env {:?} is not a variable name (letters, digits and _, not \
                     starting with a digit)",
                    name.chars().take(40).collect::<String>()
                )));
            }
        }
        let resolved = super::super::commands::active(ctx)?;
        let masker = (!args.no_mask).then(|| Masker::new(&resolved.credential));

        let mut cmd = Command::new(program);
        cmd.args(rest);
        let names = ctx.names();
        // The credential's own variables, and those of the Vault login and
        // the sealed backend's key.
        for var in names.secret_variables() {
            cmd.env_remove(var);
        }
        cmd.env_remove(names.agent_sock());

        // Before anything can be left behind: a signal from here on is
        // handled (forwarded to the command once it runs), never fatal.
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
            .map_err(|e| {
            Error::io("installing the signal handlers for", "credstore exec", e)
        })?;

        let mut agent = None;
        match &args.token_env {
            Some(name) => {
                if resolved.credential.agent_identity().is_some() {
                    eprintln!(
                        "warning: --token-env {name}: the command gets the agent identity's raw \
                         token, and with it the private key; without --token-env it gets a \
                         signing agent instead and never holds the key"
                    );
                }
                cmd.env(name, resolved.credential.expose_token());
                drop(resolved);
            }
            None => {
                let socket = super::super::daemon::exec_socket_path(ctx);
                let bound = super::super::daemon::start(
                    ctx,
                    resolved,
                    super::super::daemon::StartOptions {
                        socket,
                        log: None,
                        allow_export: false,
                        max_idle: None,
                        base_url: None,
                    },
                )?;
                cmd.env(names.agent_sock(), bound.socket());
                let handle = bound.handle();
                let serving = std::thread::Builder::new()
                    .name("exec-agent".into())
                    .spawn(move || bound.serve())
                    .map_err(|e| Error::io("starting the agent for", "credstore exec", e))?;
                agent = Some((handle, serving));
            }
        }
        if masker.is_some() {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if let Some((handle, _)) = &agent {
                    handle.stop("the command did not start");
                }
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                eprintln!(
                    "error: cannot run {}: {e}",
                    std::path::Path::new(program).display()
                );
                return Ok(code);
            }
        };
        let pid = child.id();
        std::thread::Builder::new()
            .name("exec-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    // A terminal's Ctrl-C / Ctrl-\ already reached the
                    // command (same process group): forwarding it would
                    // deliver it twice.
                    if matches!(sig, SIGINT | SIGQUIT)
                        && credstore_platform::in_terminal_foreground()
                    {
                        continue;
                    }
                    let _ = credstore_platform::send_signal(pid, sig);
                }
            })
            .map_err(|e| Error::io("starting the signal thread for", "credstore exec", e))?;

        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let mut pumps = 0;
        if let Some(masker) = masker {
            let masker = std::sync::Arc::new(masker);
            if let Some(mut out) = child.stdout.take() {
                let (m, tx) = (std::sync::Arc::clone(&masker), done_tx.clone());
                pumps += 1;
                std::thread::spawn(move || {
                    m.pump(&mut out, &mut credstore_platform::RawStdout);
                    let _ = tx.send(());
                });
            }
            if let Some(mut err) = child.stderr.take() {
                let (m, tx) = (masker, done_tx.clone());
                pumps += 1;
                std::thread::spawn(move || {
                    m.pump(&mut err, &mut std::io::stderr());
                    let _ = tx.send(());
                });
            }
        }
        drop(done_tx);
        let status = child
            .wait()
            .map_err(|e| Error::io("waiting for", std::path::Path::new(program), e))?;
        // The output the command wrote before it exited; a process it left
        // running may hold the pipes open, so this waits 2 s at most.
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..pumps {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        if let Some((handle, serving)) = agent {
            handle.stop("the command exited");
            // Bounded: the command's exit code is never held back by the
            // agent (stop wipes the key itself, whatever the thread does).
            let deadline = Instant::now() + Duration::from_secs(3);
            while !serving.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if serving.is_finished() {
                let _ = serving.join();
            }
        }
        use std::os::unix::process::ExitStatusExt;
        if let Some(code) = status.code() {
            return Ok(u8::try_from(code).unwrap_or(1));
        }
        let sig = status.signal().unwrap_or(SIGTERM);
        // The command died of a signal: so does credstore, for the caller
        // to see the same status (core dumps stay off).
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        Ok(u8::try_from(128 + sig).unwrap_or(255))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credstore::AuthMode;

    fn masked(m: &Masker, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        m.pump(&mut &input[..], &mut out);
        out
    }

    #[test]
    fn an_api_key_is_masked_everywhere() {
        let c = Credential::parse(AuthMode::ApiKey, b"sk-test-secret-123", "t").unwrap();
        let m = Masker::new(&c);
        assert_eq!(
            masked(
                &m,
                b"key=sk-test-secret-123\nx sk-test-secret-123sk-test-secret-123\nend"
            ),
            b"key=<redacted>\nx <redacted><redacted>\nend".to_vec()
        );
        assert_eq!(
            masked(&m, b"sk-test-secret-12\n"),
            b"sk-test-secret-12\n".to_vec()
        );
    }

    #[test]
    fn a_long_line_is_masked_across_pieces() {
        let c = Credential::parse(AuthMode::ApiKey, b"sk-test-secret-123", "t").unwrap();
        let m = Masker::new(&c);
        // A secret straddling the 64 KiB piece boundary and the read chunks.
        for offset in [MAX_LINE - 20, MAX_LINE - 9, MAX_LINE - 1, MAX_LINE + 3] {
            let mut input = vec![b'a'; offset];
            input.extend_from_slice(b"sk-test-secret-123");
            input.extend_from_slice(&vec![b'b'; MAX_LINE]);
            let out = masked(&m, &input);
            assert!(
                !out.windows(18).any(|w| w == b"sk-test-secret-123"),
                "{offset}"
            );
            assert_eq!(out.len(), input.len() - 18 + REDACTED.len());
        }
    }

    #[test]
    fn variable_names() {
        assert!(valid_variable_name("OPENAI_API_KEY"));
        assert!(valid_variable_name("_x1"));
        for bad in ["", "1A", "A-B", "A B", "A=B"] {
            assert!(!valid_variable_name(bad), "{bad}");
        }
    }
}
