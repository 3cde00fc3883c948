//! Configuration: flags, each with an environment variable twin, plus a `.env` file loaded
//! by `main` before parsing (real environment variables win over the file, flags over both).

use clap::{ArgAction, Parser, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A secret string whose Debug and Display never show the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// Where Coinbase users create their API keys (named in credential errors).
const API_KEYS_PAGE: &str = "https://exchange.coinbase.com/profile/api \
     (sandbox: https://public.sandbox.exchange.coinbase.com/profile/api)";

/// True for the `your_...` values .env.example ships, which nobody's credentials look like.
fn is_placeholder(value: &str) -> bool {
    value.trim().to_ascii_lowercase().starts_with("your_")
}

impl Secret {
    /// The secret value; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Where records are published, and over which protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublisherAddress {
    /// A stream server over STRP: `host:port`.
    Strp(String),
    /// A Kafka bootstrap broker: `host:port`, given as `kafka://host:port`.
    Kafka(String),
}

impl PublisherAddress {
    /// Parses `host:port` (STRP) or `kafka://host:port`; any other scheme is refused by name,
    /// since `http://host:port` would otherwise read as a host called `http`.
    pub fn parse(s: &str) -> Result<PublisherAddress, String> {
        match s.split_once("://") {
            None => cli_support::host_port(s).map(PublisherAddress::Strp),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("kafka") => {
                cli_support::host_port(rest.trim_end_matches('/'))
                    .map(PublisherAddress::Kafka)
                    .map_err(|e| format!("after kafka://: {e}"))
            }
            Some((scheme, _)) => Err(format!(
                "unknown scheme {scheme}://: expected host:port (a stream server over STRP) or \
                 kafka://host:port (a Kafka bootstrap broker)"
            )),
        }
    }
}

impl fmt::Display for PublisherAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublisherAddress::Strp(addr) => f.write_str(addr),
            PublisherAddress::Kafka(addr) => write!(f, "kafka://{addr}"),
        }
    }
}

/// Which gateway delivers execution reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecSource {
    /// The order-entry gateway (fix-ord, port 6121): reports for this session's orders.
    OrderEntry,
    /// The drop-copy gateway (fix-dc, port 6122): reports for the whole profile.
    DropCopy,
    /// No execution session.
    None,
}

/// Command line and environment.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "coinbase-bridge",
    version,
    about = "Streams Coinbase Exchange FIX market data and execution reports into stream-server topics",
    long_about = "Streams Coinbase Exchange FIX market data and execution reports into stream-server \
topics. Every option can also be set by the environment variable shown, or in a .env file in \
the working directory (the environment wins over the file, flags win over both)."
)]
pub struct Config {
    /// Coinbase API key (also the SenderCompID and Username).
    #[arg(long, env = "COINBASE_API_KEY")]
    pub api_key: String,

    /// Coinbase API secret, base64 as Coinbase shows it.
    #[arg(long, env = "COINBASE_API_SECRET", hide_env_values = true)]
    pub api_secret: Secret,

    /// Coinbase API passphrase.
    #[arg(long, env = "COINBASE_PASSPHRASE", hide_env_values = true)]
    pub passphrase: Secret,

    /// SenderCompID (49); defaults to the API key, which is what Coinbase expects.
    #[arg(long, env = "COINBASE_SENDER_COMP_ID")]
    pub sender_comp_id: Option<String>,

    /// Use the sandbox gateways (fix-*.sandbox.exchange.coinbase.com).
    #[arg(long, env = "COINBASE_USE_SANDBOX", default_value = "false", action = ArgAction::Set,
          value_parser = cli_support::bool_value())]
    pub use_sandbox: bool,

    /// Where to publish: host:port for a stream server over STRP, kafka://host:port for the
    /// bootstrap broker of a Kafka-protocol cluster (Kafka, Redpanda, or a stream server's
    /// Kafka side).
    #[arg(long, env = "STREAM_SERVER", default_value = "localhost:9092",
          value_parser = PublisherAddress::parse)]
    pub stream_addr: PublisherAddress,

    /// Symbols to subscribe to, comma-separated.
    #[arg(
        long,
        env = "COINBASE_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC-USD,ETH-USD"
    )]
    pub symbols: Vec<String>,

    /// Run the market data session.
    #[arg(long, env = "COINBASE_MARKET_DATA", default_value = "true", action = ArgAction::Set,
          value_parser = cli_support::bool_value())]
    pub market_data: bool,

    /// Market data gateway host [default: fix-md.exchange.coinbase.com, or its sandbox twin].
    #[arg(long, env = "COINBASE_MD_HOST")]
    pub md_host: Option<String>,

    /// Market data gateway port: 6121 snapshot + incremental, 6122 incremental only.
    #[arg(long, env = "COINBASE_MD_PORT", default_value_t = 6121)]
    pub md_port: u16,

    /// Where execution reports come from.
    #[arg(long, env = "COINBASE_EXECUTIONS", value_enum, default_value_t = ExecSource::OrderEntry)]
    pub executions: ExecSource,

    /// Execution gateway host [default: fix-ord (order-entry) or fix-dc (drop-copy)
    /// .exchange.coinbase.com, or the sandbox twin].
    #[arg(long, env = "COINBASE_EXEC_HOST")]
    pub exec_host: Option<String>,

    /// Execution gateway port [default: 6121 order-entry, 6122 drop-copy].
    #[arg(long, env = "COINBASE_EXEC_PORT")]
    pub exec_port: Option<u16>,

    /// API key for the execution session only (Coinbase allows one session per API key;
    /// with this set, market data and executions use different keys). Needs
    /// COINBASE_EXEC_API_SECRET and COINBASE_EXEC_PASSPHRASE too.
    #[arg(long, env = "COINBASE_EXEC_API_KEY")]
    pub exec_api_key: Option<String>,

    /// API secret (base64) belonging to COINBASE_EXEC_API_KEY.
    #[arg(long, env = "COINBASE_EXEC_API_SECRET", hide_env_values = true)]
    pub exec_api_secret: Option<Secret>,

    /// Passphrase belonging to COINBASE_EXEC_API_KEY.
    #[arg(long, env = "COINBASE_EXEC_PASSPHRASE", hide_env_values = true)]
    pub exec_passphrase: Option<Secret>,

    /// CancelOrdersOnDisconnect (8013) sent on the order-entry Logon: S (session) or Y (all).
    #[arg(long, env = "COINBASE_CANCEL_ON_DISCONNECT")]
    pub cancel_on_disconnect: Option<String>,

    /// PEM file of CA certificates to trust instead of the system and bundled roots (tests,
    /// private gateways).
    #[arg(long, env = "COINBASE_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// TLS server name to verify, when it differs from the host connected to.
    #[arg(long, env = "COINBASE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,

    /// TargetCompID (56).
    #[arg(long, env = "COINBASE_TARGET_COMP_ID", default_value = "Coinbase")]
    pub target_comp_id: String,

    /// HeartBtInt (108) in seconds (Coinbase: at most 30 on order entry).
    #[arg(long, env = "COINBASE_HEARTBEAT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub heartbeat_secs: u64,

    /// First reconnect delay in milliseconds (doubles per failure, with jitter).
    #[arg(long, env = "COINBASE_RECONNECT_MIN_MS", default_value_t = 1_000)]
    pub reconnect_min_ms: u64,

    /// Longest reconnect delay in milliseconds.
    #[arg(long, env = "COINBASE_RECONNECT_MAX_MS", default_value_t = 60_000)]
    pub reconnect_max_ms: u64,

    /// Records buffered while the stream server is slow or down; beyond this they are
    /// dropped, counted and logged.
    #[arg(long, env = "COINBASE_BUFFER_CAPACITY", default_value_t = 100_000)]
    pub buffer_capacity: usize,

    /// Partitions of topics the bridge creates (1 keeps one total order per topic).
    #[arg(long, env = "COINBASE_TOPIC_PARTITIONS", default_value_t = 1)]
    pub topic_partitions: u32,
}

/// Removes this program's environment variables (`COINBASE_*`, `STREAM_SERVER`) that are set
/// but empty, so that they count as unset: docker-compose interpolates an unset
/// `${VAR:-}` as an empty string, which clap would otherwise take as a value (and fail to
/// parse as a number, or use as an empty SenderCompID). Call before any thread starts.
/// Returns the names removed.
pub fn unset_empty_env_vars() -> Vec<String> {
    let empty: Vec<String> = std::env::vars_os()
        .filter(|(_, v)| v.is_empty())
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("COINBASE_") || k == "STREAM_SERVER")
        .collect();
    for k in &empty {
        std::env::remove_var(k);
    }
    empty
}

/// One gateway to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Config {
    fn default_host(&self, name: &str) -> String {
        if self.use_sandbox {
            format!("{name}.sandbox.exchange.coinbase.com")
        } else {
            format!("{name}.exchange.coinbase.com")
        }
    }

    /// SenderCompID to use.
    pub fn sender(&self) -> &str {
        self.sender_comp_id.as_deref().unwrap_or(&self.api_key)
    }

    /// The market data gateway, if that session is enabled.
    pub fn md_endpoint(&self) -> Option<Endpoint> {
        self.market_data.then(|| Endpoint {
            host: self
                .md_host
                .clone()
                .unwrap_or_else(|| self.default_host("fix-md")),
            port: self.md_port,
        })
    }

    /// The execution report gateway, if that session is enabled.
    pub fn exec_endpoint(&self) -> Option<Endpoint> {
        let (name, port) = match self.executions {
            ExecSource::OrderEntry => ("fix-ord", 6121),
            ExecSource::DropCopy => ("fix-dc", 6122),
            ExecSource::None => return None,
        };
        Some(Endpoint {
            host: self
                .exec_host
                .clone()
                .unwrap_or_else(|| self.default_host(name)),
            port: self.exec_port.unwrap_or(port),
        })
    }

    /// Credentials of the execution session: `(api key, secret, passphrase, SenderCompID)`,
    /// its own key when configured, else the main one.
    pub fn exec_credentials(&self) -> (String, Secret, Secret, String) {
        match (
            &self.exec_api_key,
            &self.exec_api_secret,
            &self.exec_passphrase,
        ) {
            (Some(k), Some(s), Some(p)) => (k.clone(), s.clone(), p.clone(), k.clone()),
            _ => (
                self.api_key.clone(),
                self.api_secret.clone(),
                self.passphrase.clone(),
                self.sender().to_owned(),
            ),
        }
    }

    /// HeartBtInt as a Duration.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// Checks what clap cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.api_key.is_empty(), "COINBASE_API_KEY is empty");
        anyhow::ensure!(
            !self.api_secret.expose().is_empty(),
            "COINBASE_API_SECRET is empty"
        );
        let credentials = [
            ("COINBASE_API_KEY", Some(self.api_key.as_str())),
            ("COINBASE_API_SECRET", Some(self.api_secret.expose())),
            ("COINBASE_PASSPHRASE", Some(self.passphrase.expose())),
            ("COINBASE_SENDER_COMP_ID", self.sender_comp_id.as_deref()),
            ("COINBASE_EXEC_API_KEY", self.exec_api_key.as_deref()),
            (
                "COINBASE_EXEC_API_SECRET",
                self.exec_api_secret.as_ref().map(Secret::expose),
            ),
            (
                "COINBASE_EXEC_PASSPHRASE",
                self.exec_passphrase.as_ref().map(Secret::expose),
            ),
        ];
        for (var, value) in credentials {
            if let Some(v) = value.filter(|v| is_placeholder(v)) {
                anyhow::bail!(
                    "{var} is still the placeholder {v:?} of .env.example: set it to your own \
                     value from {API_KEYS_PAGE}{}",
                    if var == "COINBASE_SENDER_COMP_ID" {
                        " (or remove the line: it defaults to COINBASE_API_KEY)"
                    } else {
                        ""
                    }
                );
            }
        }
        for (var, secret) in [
            ("COINBASE_API_SECRET", Some(&self.api_secret)),
            ("COINBASE_EXEC_API_SECRET", self.exec_api_secret.as_ref()),
        ] {
            if let Some(secret) = secret {
                if crate::auth::decode_secret(secret.expose()).is_err() {
                    anyhow::bail!(
                        "{var} is not valid base64: copy the API secret exactly as Coinbase \
                         shows it when the key is created ({API_KEYS_PAGE})"
                    );
                }
            }
        }
        anyhow::ensure!(!self.symbols.is_empty(), "no symbols configured");
        let exec_set = [
            self.exec_api_key.is_some(),
            self.exec_api_secret.is_some(),
            self.exec_passphrase.is_some(),
        ];
        anyhow::ensure!(
            exec_set.iter().all(|b| *b) || exec_set.iter().all(|b| !*b),
            "COINBASE_EXEC_API_KEY, COINBASE_EXEC_API_SECRET and COINBASE_EXEC_PASSPHRASE \
             go together: set all three or none"
        );
        anyhow::ensure!(self.topic_partitions >= 1, "topic partitions must be >= 1");
        anyhow::ensure!(self.buffer_capacity >= 1, "buffer capacity must be >= 1");
        if let Some(c) = &self.cancel_on_disconnect {
            anyhow::ensure!(
                c == "S" || c == "Y",
                "COINBASE_CANCEL_ON_DISCONNECT must be S or Y"
            );
        }
        anyhow::ensure!(
            self.reconnect_min_ms >= 1 && self.reconnect_min_ms <= self.reconnect_max_ms,
            "reconnect delays must satisfy 1 <= min <= max"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The program name and test credentials, then `args`.
    fn argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "coinbase-bridge",
            "--api-key",
            "KEY",
            "--api-secret",
            "c2VjcmV0",
            "--passphrase",
            "PASS",
        ];
        v.extend_from_slice(args);
        v
    }

    fn parse(args: &[&str]) -> Config {
        let v = argv(args);
        Config::try_parse_from(v).unwrap()
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = parse(&[]);
        let s = format!("{c:?}");
        assert!(!s.contains("c2VjcmV0"), "{s}");
        assert!(!s.contains("PASS"), "{s}");
        assert!(s.contains("KEY"));
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse(&[]);
        assert_eq!(c.symbols, vec!["BTC-USD", "ETH-USD"]);
        assert_eq!(
            c.md_endpoint().unwrap().to_string(),
            "fix-md.exchange.coinbase.com:6121"
        );
        assert_eq!(
            c.exec_endpoint().unwrap().to_string(),
            "fix-ord.exchange.coinbase.com:6121"
        );
        assert_eq!(c.sender(), "KEY");
        assert_eq!(
            c.stream_addr,
            PublisherAddress::Strp("localhost:9092".into())
        );
        let c = parse(&["--use-sandbox", "true", "--executions", "drop-copy"]);
        assert_eq!(
            c.md_endpoint().unwrap().to_string(),
            "fix-md.sandbox.exchange.coinbase.com:6121"
        );
        assert_eq!(
            c.exec_endpoint().unwrap().to_string(),
            "fix-dc.sandbox.exchange.coinbase.com:6122"
        );
        c.validate().unwrap();
    }

    /// The test credentials with one flag's value replaced (or added).
    fn with(flag: &str, value: &str) -> Config {
        let mut args = vec![
            ("--api-key", "KEY"),
            ("--api-secret", "c2VjcmV0"),
            ("--passphrase", "PASS"),
        ];
        match args.iter_mut().find(|(f, _)| *f == flag) {
            Some(a) => a.1 = value,
            None => args.push((flag, value)),
        }
        let argv =
            std::iter::once("coinbase-bridge").chain(args.iter().flat_map(|(f, v)| [*f, *v]));
        Config::try_parse_from(argv).unwrap()
    }

    #[test]
    fn placeholder_and_malformed_credentials_are_refused_naming_the_variable() {
        for (flag, value, var) in [
            ("--api-key", "your_api_key", "COINBASE_API_KEY"),
            ("--api-secret", "your_base64_secret", "COINBASE_API_SECRET"),
            ("--passphrase", "your_passphrase", "COINBASE_PASSPHRASE"),
            (
                "--sender-comp-id",
                "your_sender_comp_id",
                "COINBASE_SENDER_COMP_ID",
            ),
        ] {
            let e = with(flag, value).validate().unwrap_err().to_string();
            assert!(e.contains(var) && e.contains("placeholder"), "{e}");
            assert!(e.contains("exchange.coinbase.com/profile/api"), "{e}");
        }
        let e = with("--api-secret", "not base64!")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("COINBASE_API_SECRET is not valid base64"), "{e}");
        assert!(
            !e.contains("not base64!"),
            "the secret itself is never shown: {e}"
        );
        parse(&[]).validate().unwrap();
    }

    /// .env.example copied unchanged must not start a bridge that retries fake credentials
    /// forever; its optional values are commented out.
    #[test]
    fn env_example_unchanged_is_refused_and_sets_only_what_is_required() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example"))
                .unwrap();
        let vars: Vec<(String, String)> = dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "COINBASE_API_KEY",
                "COINBASE_API_SECRET",
                "COINBASE_PASSPHRASE"
            ],
            "only the required values are set in .env.example"
        );
        let mut args = vec!["coinbase-bridge".to_owned()];
        for (k, v) in &vars {
            let flag = match k.as_str() {
                "COINBASE_API_KEY" => "--api-key",
                "COINBASE_API_SECRET" => "--api-secret",
                _ => "--passphrase",
            };
            args.extend([flag.to_owned(), v.clone()]);
        }
        let e = Config::try_parse_from(args)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("COINBASE_API_KEY is still the placeholder"),
            "{e}"
        );
    }

    /// The deployment guide's `.env` block, inline comment included, as dotenvy reads it.
    #[test]
    fn guide_env_file_parses() {
        let guide = "COINBASE_API_KEY=your_api_key\n\
            COINBASE_API_SECRET=your_base64_secret\n\
            COINBASE_PASSPHRASE=your_passphrase\n\
            COINBASE_SENDER_COMP_ID=your_sender_comp_id\n\
            COINBASE_USE_SANDBOX=true  # Use false for production\n";
        let vars: std::collections::HashMap<String, String> =
            dotenvy::from_read_iter(guide.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(vars["COINBASE_USE_SANDBOX"], "true");
        assert_eq!(vars["COINBASE_API_KEY"], "your_api_key");
        for v in ["true", "True", "1", "yes", "on"] {
            assert!(parse(&["--use-sandbox", v]).use_sandbox, "{v}");
        }
        for v in ["false", "0", "no", "off"] {
            assert!(!parse(&["--use-sandbox", v]).use_sandbox, "{v}");
        }
    }

    #[test]
    fn separate_execution_credentials() {
        let c = parse(&[]);
        assert_eq!(c.exec_credentials().0, "KEY");
        let c = parse(&[
            "--exec-api-key",
            "EKEY",
            "--exec-api-secret",
            "ZXNlY3JldA==",
            "--exec-passphrase",
            "EPASS",
        ]);
        c.validate().unwrap();
        let (k, s, p, sender) = c.exec_credentials();
        assert_eq!(
            (k.as_str(), s.expose(), p.expose(), sender.as_str()),
            ("EKEY", "ZXNlY3JldA==", "EPASS", "EKEY")
        );
        assert!(!format!("{c:?}").contains("EPASS"));
        let c = parse(&["--exec-api-key", "EKEY"]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn overrides_and_validation() {
        let c = parse(&[
            "--md-host",
            "127.0.0.1",
            "--md-port",
            "7000",
            "--symbols",
            "SOL-USD,BTC-EUR",
            "--executions",
            "none",
            "--cancel-on-disconnect",
            "X",
        ]);
        assert_eq!(c.md_endpoint().unwrap().to_string(), "127.0.0.1:7000");
        assert_eq!(c.exec_endpoint(), None);
        assert_eq!(c.symbols, vec!["SOL-USD", "BTC-EUR"]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn publisher_address_picks_the_protocol_by_scheme() {
        let addr = |s: &str| parse(&["--stream-addr", s]).stream_addr;
        assert_eq!(
            addr("10.0.0.5:9092"),
            PublisherAddress::Strp("10.0.0.5:9092".into())
        );
        assert_eq!(
            addr("kafka://broker-1:9093"),
            PublisherAddress::Kafka("broker-1:9093".into())
        );
        assert_eq!(
            addr("KAFKA://[::1]:9092/"),
            PublisherAddress::Kafka("[::1]:9092".into())
        );
        assert_eq!(
            addr("kafka://broker-1:9093").to_string(),
            "kafka://broker-1:9093"
        );
        assert_eq!(addr("localhost:9092").to_string(), "localhost:9092");
    }

    #[test]
    fn a_bad_publisher_address_names_the_flag_the_variable_and_what_was_typed() {
        for (value, says) in [
            ("http://localhost:9092", "unknown scheme http://"),
            ("kafka://localhost", "after kafka://: missing port"),
            ("kafka://", "after kafka://: missing port"),
            ("localhost", "missing port"),
        ] {
            let e = cli_support::try_parse_from::<Config, _, _>(argv(&["--stream-addr", value]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{value}: {e}");
            assert!(
                e.contains("--stream-addr") && e.contains("STREAM_SERVER"),
                "{e}"
            );
            assert!(e.contains(value), "{e}");
        }
        let e = PublisherAddress::parse("http://x:1").unwrap_err();
        assert!(e.contains("kafka://host:port"), "{e}");
    }
}
