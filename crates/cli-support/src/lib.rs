//! Command-line conventions shared by every binary of the workspace, so that the same input
//! means the same thing to each of them:
//!
//! - [`parse`] parses like clap's `Parser::parse`, but an invalid value names both the flag
//!   and its environment variable (and which of the two the value came from), and an unknown
//!   flag that is a word of known ones (`--port`) points at them (`--tcp-port`, `--udp-port`).
//! - [`bool_value`] accepts one set of words for every boolean flag and variable, and `--help`
//!   lists them all.
//! - [`ip_or_host`] and [`host_port`] accept host names (`localhost`) wherever addresses are
//!   taken, and say what is missing from an address without a port.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Command, CommandFactory, FromArgMatches};

/// The words a boolean flag or variable accepts, true ones first (case is ignored).
pub const TRUE_WORDS: [&str; 4] = ["true", "yes", "on", "1"];
/// See [`TRUE_WORDS`].
pub const FALSE_WORDS: [&str; 4] = ["false", "no", "off", "0"];

/// The value parser of every boolean flag and environment variable.
pub fn bool_value() -> BoolValue {
    BoolValue
}

/// See [`bool_value`]: [`TRUE_WORDS`] and [`FALSE_WORDS`], in any case, all listed by `--help`.
#[derive(Debug, Clone, Copy)]
pub struct BoolValue;

impl TypedValueParser for BoolValue {
    type Value = bool;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<bool, clap::Error> {
        let word = value.to_string_lossy().to_ascii_lowercase();
        if TRUE_WORDS.contains(&word.as_str()) {
            return Ok(true);
        }
        if FALSE_WORDS.contains(&word.as_str()) {
            return Ok(false);
        }
        // The stock parser words the error, listing the accepted words.
        PossibleValuesParser::new(TRUE_WORDS.into_iter().chain(FALSE_WORDS))
            .parse_ref(cmd, arg, value)
            .map(|_| false)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            TRUE_WORDS
                .into_iter()
                .chain(FALSE_WORDS)
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

/// An IP address, or a host name resolved to one (IPv4 preferred, as `localhost` usually
/// means 127.0.0.1 to the people who type it).
pub fn ip_or_host(s: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = (s, 0)
        .to_socket_addrs()
        .map_err(|e| format!("not an IP address, and the host name does not resolve: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| "the host name resolves to no address".to_owned())
}

/// A `host:port` address (host name or IP, `[v6]:port` for IPv6), checked for its form only:
/// resolution happens on connect, where a name may have changed meanwhile.
pub fn host_port(s: &str) -> Result<String, String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!(
            "missing port: expected host:port, e.g. {s}:9092 or 127.0.0.1:9092"
        ));
    };
    if host.is_empty() {
        return Err("missing host: expected host:port, e.g. 127.0.0.1:9092".to_owned());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("an IPv6 address takes brackets: [{host}]:{port}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_owned()),
        _ => Err(format!("port {port:?} is not a number in 1-65535")),
    }
}

/// A `host:port` address resolved now (for tools that connect at once).
pub fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    let s = host_port(s)?;
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

/// Parses the process's command line into `P`, exiting with clap's usage status on an error
/// (see the crate documentation for what the errors add).
pub fn parse<P: CommandFactory + FromArgMatches>() -> P {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] over explicit arguments (the first is the program name), for tests.
pub fn try_parse_from<P, I, T>(args: I) -> Result<P, clap::Error>
where
    P: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = P::command();
    let result = cmd
        .try_get_matches_from_mut(&args)
        .and_then(|m| P::from_arg_matches(&m));
    result.map_err(|e| explain(e, &cmd, &args))
}

/// Every argument of `cmd` and its subcommands.
fn all_args(cmd: &Command) -> Vec<&clap::Arg> {
    let mut out: Vec<&clap::Arg> = cmd.get_arguments().collect();
    for sub in cmd.get_subcommands() {
        out.extend(all_args(sub));
    }
    out
}

fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Rebuilds `e` with its first line changed by `edit` (the rest, usage and hints, kept).
fn with_first_line(
    e: &clap::Error,
    cmd: &Command,
    edit: impl FnOnce(&str) -> String,
) -> clap::Error {
    let rendered = e.render().to_string();
    let body = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    // `format` below adds the usage and the `--help` hint again.
    let body = body
        .split("\n\nUsage:")
        .next()
        .unwrap_or(body)
        .split("\n\nFor more information")
        .next()
        .unwrap_or(body);
    let (first, rest) = body.split_once('\n').unwrap_or((body, ""));
    let message = if rest.is_empty() {
        edit(first)
    } else {
        format!("{}\n{rest}", edit(first))
    };
    let mut cmd = cmd.clone();
    clap::Error::raw(e.kind(), message).format(&mut cmd)
}

fn explain(e: clap::Error, cmd: &Command, args: &[OsString]) -> clap::Error {
    match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let Some(shown) = context(&e, ContextKind::InvalidArg) else {
                return e;
            };
            // `shown` is how clap names the argument, e.g. `--tcp-port <TCP_PORT>`.
            let long = shown
                .split_whitespace()
                .next()
                .and_then(|t| t.strip_prefix("--"))
                .unwrap_or_default()
                .trim_end_matches(['=', '<']);
            let Some(arg) = all_args(cmd)
                .into_iter()
                .find(|a| a.get_long() == Some(long))
            else {
                return e;
            };
            let Some(env) = arg.get_env().and_then(|v| v.to_str()) else {
                return e;
            };
            let flag = format!("--{long}");
            let on_command_line = args.iter().skip(1).any(|a| {
                a.to_str().is_some_and(|a| {
                    a == flag
                        || a.starts_with(&format!("{flag}="))
                        || arg
                            .get_short()
                            .is_some_and(|s| a.starts_with(&format!("-{s}")))
                })
            });
            let note = if on_command_line {
                format!(" (the flag; its environment variable is {env})")
            } else {
                let value = std::env::var(env).unwrap_or_default();
                format!(" (set by the environment variable {env}={value})")
            };
            let quoted = format!("'{shown}'");
            with_first_line(&e, cmd, |line| {
                line.replacen(&quoted, &format!("{quoted}{note}"), 1)
            })
        }
        ErrorKind::UnknownArgument => {
            let Some(given) = context(&e, ContextKind::InvalidArg) else {
                return e;
            };
            let word = given.trim_start_matches('-');
            let word = word.split('=').next().unwrap_or(word);
            if word.is_empty() || context(&e, ContextKind::SuggestedArg).is_some() {
                return e;
            }
            // Only this level's flags: a subcommand's are not valid here.
            let mut near: Vec<String> = cmd
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| l.split('-').any(|part| part == word))
                .map(|l| format!("--{l}"))
                .collect();
            near.sort();
            near.dedup();
            if near.is_empty() {
                return e;
            }
            with_first_line(&e, cmd, |line| {
                format!("{line}\n\n  tip: did you mean {}?", near.join(" or "))
            })
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[arg(long, env = "CLI_SUPPORT_TEST_TCP_PORT", default_value_t = 1)]
        tcp_port: u16,
        #[arg(long, env = "CLI_SUPPORT_TEST_UDP_PORT", default_value_t = 2)]
        udp_port: u16,
        #[arg(long, env = "CLI_SUPPORT_TEST_FLAG", value_parser = bool_value(),
              action = clap::ArgAction::Set, num_args = 0..=1,
              default_missing_value = "true", default_value = "false")]
        flag: bool,
        #[arg(long, value_parser = host_port, default_value = "localhost:9092")]
        addr: String,
    }

    fn err(args: &[&str]) -> String {
        try_parse_from::<T, _, _>(args)
            .unwrap_err()
            .render()
            .to_string()
    }

    #[test]
    fn an_invalid_flag_value_names_the_variable_too() {
        let e = err(&["x", "--tcp-port", "abc"]);
        assert!(e.contains("'--tcp-port <TCP_PORT>' (the flag; its environment variable is CLI_SUPPORT_TEST_TCP_PORT)"), "{e}");
    }

    #[test]
    fn an_invalid_variable_value_says_it_came_from_the_variable() {
        // The only test that sets this variable.
        std::env::set_var("CLI_SUPPORT_TEST_UDP_PORT", "abc");
        let e = err(&["x"]);
        std::env::remove_var("CLI_SUPPORT_TEST_UDP_PORT");
        assert!(
            e.contains("(set by the environment variable CLI_SUPPORT_TEST_UDP_PORT=abc)"),
            "{e}"
        );
        assert!(e.contains("--udp-port"), "{e}");
    }

    #[test]
    fn an_unknown_flag_that_is_a_word_of_known_ones_points_at_them() {
        let e = err(&["x", "--port", "5"]);
        assert!(e.contains("did you mean --tcp-port or --udp-port?"), "{e}");
    }

    #[test]
    fn booleans_take_every_word_in_every_form() {
        for (args, want) in [
            (&["x"][..], false),
            (&["x", "--flag"][..], true),
            (&["x", "--flag", "true"][..], true),
            (&["x", "--flag=yes"][..], true),
            (&["x", "--flag", "OFF"][..], false),
            (&["x", "--flag", "0"][..], false),
        ] {
            let t: T = try_parse_from(args).unwrap();
            assert_eq!(t.flag, want, "{args:?}");
        }
        let e = err(&["x", "--flag", "maybe"]);
        assert!(e.contains("true, yes, on, 1, false, no, off, 0"), "{e}");
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("localhost:9092").unwrap(), "localhost:9092");
        assert_eq!(host_port("[::1]:9092").unwrap(), "[::1]:9092");
        assert!(host_port("nohost").unwrap_err().contains("missing port"));
        assert!(host_port(":9092").unwrap_err().contains("missing host"));
        assert!(host_port("h:0").is_err() && host_port("h:x").is_err());
        assert!(host_port("::1:9092").unwrap_err().contains("brackets"));
        assert!(err(&["x", "--addr", "nohost"]).contains("missing port"));
        assert_eq!(
            ip_or_host("127.0.0.1").unwrap(),
            IpAddr::from([127, 0, 0, 1])
        );
        assert!(ip_or_host("localhost").unwrap().is_loopback());
        assert!(ip_or_host("no-such-host.invalid").is_err());
    }
}
