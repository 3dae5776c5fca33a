//! `xueliang`: the hub's command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use xl_detect::engine::FaceMode;
use xueliang::config::{Config, LogConfig};
use xueliang::hub::Hub;

#[derive(Parser)]
#[command(
    name = "xueliang",
    version,
    about = "Xueliang (雪亮): video and access-control hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The demo community with everything embedded (SQLite, the MQTT broker, a gate
    /// simulator); prints the dashboard URL and the demo accounts. Runs from any directory:
    /// without --config, the demo built into the binary, its video from the asset cache
    /// ($XUELIANG_CACHE, default ~/.cache/xueliang).
    Demo {
        /// A demo configuration file instead of the built-in one (config/demo.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the demo keeps its database, snapshots and API token. Default: the file's
        /// data_dir, or for the built-in demo $XDG_DATA_HOME/xueliang/demo
        /// (~/.local/share/xueliang/demo).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The console's and API's address (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The embedded MQTT broker's address (default 127.0.0.1:18830).
        #[arg(long)]
        mqtt_listen: Option<std::net::SocketAddr>,
    },
    /// Runs the hub with a configuration file.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Measures the video pipeline on this machine: K cameras replaying a real video through
    /// decode, motion gate, detection and tracking, against the bare ONNX Runtime ceiling.
    Bench {
        /// Cameras replaying the video at once.
        #[arg(long, default_value_t = 8)]
        cameras: usize,
        /// How long to run (ignored with --every-frame, which plays the video once).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The video (default: vtest.avi from the asset cache).
        #[arg(long)]
        video: Option<PathBuf>,
        /// Full work on every frame, lossless: persons, faces on the whole frame, an embedding
        /// of every face; no motion gate.
        #[arg(long)]
        every_frame: bool,
        /// Turn the motion gate off (detect on whole frames).
        #[arg(long)]
        no_motion: bool,
        /// Detections a second per camera; 0 = as fast as the workers go.
        #[arg(long, default_value_t = 5.0)]
        rate: f32,
        /// Faces: off, persons (on person crops; the default) or frame (whole frames; the
        /// default with --every-frame).
        #[arg(long)]
        faces: Option<String>,
        /// Inference workers (default: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// ONNX Runtime intra-op threads per session.
        #[arg(long, default_value_t = 1)]
        session_threads: usize,
        /// Crops per person-model run (the hub's default is 1; GPUs want more).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// cpu, cuda, tensorrt or openvino.
        #[arg(long, default_value = "cpu")]
        provider: String,
        /// Analysis frame width (0 = the video's own; default 640, the hub's default).
        #[arg(long)]
        analysis_width: Option<u32>,
        /// Seconds to measure the bare ONNX Runtime ceiling (0 = skip).
        #[arg(long, default_value_t = 8)]
        ceiling_seconds: u64,
        #[arg(long)]
        json: bool,
    },
    /// Validates a configuration file without starting anything.
    CheckConfig { file: PathBuf },
    /// Writes the store's topology (stations, communities, grids, cameras with their zones,
    /// gates) as TOML in the config's own schema, which `run` and `check-config` accept.
    /// Secrets are not exported: a comment names each camera or gate that has one.
    Export {
        /// The config naming the store (as `run` uses it); nothing else is started.
        #[arg(long)]
        config: PathBuf,
        /// Where to write (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Checks an evidence export (a zip the hub made): the signature of its manifest and the
    /// size and SHA-256 of every file in it. Prints `ok: N files, signed by key ID` (exit 0),
    /// or each problem by file: altered, missing, added, another signer (exit 1). A file that
    /// is not a zip or has no manifest, or a key or key file that cannot be read, exits 2.
    ///
    /// Each node of a district signs with its own key: trust the district's keys with
    /// `--keys` (or one `--key` per node), and a package made on any node verifies.
    VerifyExport {
        /// The export (a .zip).
        file: PathBuf,
        /// A hub's public key (base64, as the console and `GET /api/v1/evidence/key` show it):
        /// the package must be signed with it, or with one of the keys when given several
        /// times. Without --key and --keys, the key named in the package is used, which shows
        /// the package is unaltered since it was signed, not who signed it.
        #[arg(long)]
        key: Vec<String>,
        /// A JSON file of trusted keys, as `GET /api/v1/evidence/keys` answers (a district's
        /// keys, saved from the console or the API): `[{"public_key": BASE64, ...}, ...]`.
        /// The package must be signed with one of them (or of the --key ones).
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
    },
    /// Manages dashboard users in the hub's store.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Decodes a gate payload file with a firmware adapter and prints the canonical gate
    /// events as JSON lines (each with its `kind`); exits 1 with the reason on bad input.
    GateDecode {
        /// hikvision-isapi, dahua, zkteco-adms, esp-rfid, zigbee2mqtt, esphome, or a generic
        /// dialect's name (with --config).
        #[arg(long)]
        firmware: String,
        file: PathBuf,
        /// The MQTT topic the payload came on.
        #[arg(long)]
        topic: Option<String>,
        /// The HTTP Content-Type (multipart bodies need its boundary).
        #[arg(long)]
        content_type: Option<String>,
        /// The HTTP path, e.g. /iclock/cdata.
        #[arg(long)]
        path: Option<String>,
        /// The HTTP query, e.g. SN=CJDE193560303&table=ATTLOG.
        #[arg(long)]
        query: Option<String>,
        /// A hub config whose [[gate_ingest.generic]] dialects to know.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Connects to an RTSP camera and prints what its stream carries.
    Probe {
        /// rtsp://[user:password@]host[:port]/path
        url: String,
        /// Username, if not in the URL.
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (keeps it out of the process list).
        #[arg(long, requires = "username")]
        password_stdin: bool,
        /// `tcp` or `udp`.
        #[arg(long, default_value = "tcp")]
        transport: String,
        /// Longest time to read the stream looking for two key frames.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Write a JPEG of the first key frame here.
        #[arg(long)]
        snapshot: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user; the password is read from standard input (one line, at least 10
    /// characters), so it stays out of the process list and the shell history.
    Add {
        #[arg(long)]
        config: PathBuf,
        /// admin, duty, police or property.
        #[arg(long)]
        role: String,
        /// The communities a property user manages (comma-separated).
        #[arg(long, value_delimiter = ',')]
        communities: Vec<String>,
        username: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Demo {
            config,
            data_dir,
            listen,
            mqtt_listen,
        } => demo(&xueliang::demo::Options {
            config,
            data_dir,
            listen,
            mqtt_listen,
        }),
        Command::CheckConfig { file } => check_config(file),
        Command::Export { config, output } => export(config, output),
        Command::VerifyExport { file, key, keys } => {
            return verify_export(&file, &key, keys.as_deref());
        }
        Command::User {
            command:
                UserCommand::Add {
                    config,
                    role,
                    communities,
                    username,
                },
        } => user_add(config, &role, communities, username),
        Command::GateDecode {
            firmware,
            file,
            topic,
            content_type,
            path,
            query,
            config,
        } => {
            let meta = xueliang::gate_decode::DecodeMeta {
                topic,
                content_type,
                path,
                query,
            };
            xueliang::gate_decode::run(
                &firmware,
                &file,
                &meta,
                config.as_deref(),
                &mut std::io::stdout().lock(),
            )
            .map(|_| ())
        }
        Command::Bench {
            cameras,
            seconds,
            video,
            every_frame,
            no_motion,
            rate,
            faces,
            workers,
            session_threads,
            batch,
            provider,
            analysis_width,
            ceiling_seconds,
            json,
        } => (|| {
            let args = xueliang::bench::BenchArgs {
                cameras,
                seconds,
                video: video.unwrap_or_else(|| xl_detect::cache_dir().join("media/vtest.avi")),
                every_frame,
                motion: !no_motion,
                rate,
                faces: match faces {
                    Some(f) => parse_word("faces", &f)?,
                    None if every_frame => FaceMode::Frame,
                    None => FaceMode::Persons,
                },
                workers: if workers == 0 {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                } else {
                    workers
                },
                session_threads,
                batch,
                provider: parse_word("provider", &provider)?,
                analysis_width: analysis_width.unwrap_or(if every_frame { 0 } else { 640 }),
                ceiling_seconds,
            };
            xueliang::logging::init(&LogConfig {
                filter: "warn".into(),
                ..LogConfig::default()
            });
            let report = xueliang::bench::run(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", xueliang::bench::render(&report));
            }
            Ok(())
        })(),
        Command::Probe {
            url,
            username,
            password_stdin,
            transport,
            seconds,
            json,
            snapshot,
        } => probe(
            url,
            username,
            password_stdin,
            &transport,
            seconds,
            json,
            snapshot,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command-line word as the config spells it (`persons`, `cuda`, ...).
fn parse_word<T: serde::de::DeserializeOwned>(flag: &str, v: &str) -> anyhow::Result<T> {
    toml::Value::String(v.to_owned())
        .try_into()
        .map_err(|_| anyhow::anyhow!("--{flag} {v:?} is not one of the accepted values"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    xueliang::logging::init(&config.log);
    runtime()?.block_on(async {
        let hub = Hub::start(config).await?;
        hub.run_until_signal().await
    })
}

fn user_add(
    config: PathBuf,
    role: &str,
    communities: Vec<String>,
    username: String,
) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    let role: xl_core::Role = role.parse()?;
    let communities = communities
        .into_iter()
        .map(xl_core::CommunityId::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    runtime()?.block_on(async {
        let store = xueliang::hub::open_store(&config).await?;
        xueliang::users::add(
            &store,
            &username,
            password,
            role,
            communities,
            "xueliang user add",
        )
        .await
    })?;
    println!("user {username} added ({role})");
    Ok(())
}

fn demo(options: &xueliang::demo::Options) -> anyhow::Result<()> {
    let config = xueliang::demo::config(options)?;
    xueliang::logging::init(&config.log);
    runtime()?.block_on(xueliang::demo::run(config))
}

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let topology = config.topology()?;
    println!(
        "{}: ok ({} stations, {} communities, {} grids, {} cameras, {} gates)",
        path.display(),
        topology.stations.len(),
        topology.communities.len(),
        topology.grids.len(),
        topology.cameras.len(),
        topology.gates.len()
    );
    let implied = config.implied_communities();
    if !implied.is_empty() {
        let ids: Vec<&str> = implied.iter().map(|c| c.as_str()).collect();
        println!(
            "communities implied (named, not in [[communities]]; the id is the name): {}",
            ids.join(", ")
        );
    }
    let disabled: Vec<String> = topology
        .entries()
        .iter()
        .filter(|e| e.disabled())
        .map(|e| e.id().to_string())
        .collect();
    if !disabled.is_empty() {
        println!(
            "disabled (stored and listed, not run): {}",
            disabled.join(", ")
        );
    }
    Ok(())
}

fn export(config: PathBuf, output: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(&config)?;
    let text = runtime()?.block_on(xueliang::topology::export(&config))?;
    match output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// `verify-export`: exit 0 when the package verifies, 1 with each problem listed, 2 when the
/// file is not a package (or a key given is not a key, or the key file cannot be read).
fn verify_export(
    file: &std::path::Path,
    keys: &[String],
    keys_file: Option<&std::path::Path>,
) -> ExitCode {
    let checked = trusted_keys(keys, keys_file).and_then(|trusted| {
        let checked = match trusted.as_slice() {
            [] => (xl_evidence::verify(file, None)?, Vec::new()),
            [one] => (xl_evidence::verify(file, Some(&one.key))?, Vec::new()),
            several => {
                // Checked with the key the package names: when it is one of the trusted keys,
                // exactly what checking with that key finds.
                let report = xl_evidence::verify(file, None)?;
                let untrusted = untrusted_signer(&report, several);
                (report, untrusted.into_iter().collect())
            }
        };
        Ok((checked, trusted))
    });
    let ((report, extra), trusted) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if report.is_ok() && extra.is_empty() {
        let key_id = report.key_id().unwrap_or("?");
        let node = trusted
            .iter()
            .find(|t| t.key.key_id() == key_id && !t.node.is_empty())
            .map(|t| format!(" (node {})", t.node))
            .unwrap_or_default();
        println!("ok: {} files, signed by key {key_id}{node}", report.files());
        return ExitCode::SUCCESS;
    }
    let lines: Vec<String> = report
        .problems
        .iter()
        .map(ToString::to_string)
        .chain(extra)
        .collect();
    for line in &lines {
        println!("{line}");
    }
    let n = lines.len();
    println!(
        "{}: not verified ({n} problem{})",
        file.display(),
        if n == 1 { "" } else { "s" }
    );
    ExitCode::FAILURE
}

/// A key `verify-export` trusts, with the node it is said to be of (`--keys`).
struct TrustedKey {
    key: xl_evidence::PublicKey,
    node: String,
}

/// One key of a `--keys` file: an entry of `GET /api/v1/evidence/keys` (its other fields,
/// such as `since`, are not needed).
#[derive(serde::Deserialize)]
struct KeyEntry {
    algorithm: Option<String>,
    public_key: String,
    fingerprint: Option<String>,
    #[serde(default)]
    node: String,
}

/// A `--keys` file: the list `GET /api/v1/evidence/keys` answers, or the one key
/// `GET /api/v1/evidence/key` answers.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum KeysFile {
    List(Vec<KeyEntry>),
    One(KeyEntry),
}

/// The `--key` keys, then the `--keys` file's, each once.
fn trusted_keys(
    keys: &[String],
    keys_file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<TrustedKey>> {
    let mut trusted: Vec<TrustedKey> = Vec::new();
    let mut add = |key: TrustedKey| {
        if !trusted.iter().any(|t| t.key == key.key) {
            trusted.push(key);
        }
    };
    for text in keys {
        add(TrustedKey {
            key: xl_evidence::PublicKey::from_base64(text)
                .map_err(|e| anyhow::anyhow!("--key: {e}"))?,
            node: String::new(),
        });
    }
    if let Some(path) = keys_file {
        let context = || format!("--keys {}", path.display());
        let text = std::fs::read_to_string(path).with_context(context)?;
        let entries = match serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not the JSON of GET /api/v1/evidence/keys ([{{\"public_key\": ...}}, ...])",
                context()
            )
        })? {
            KeysFile::List(entries) => entries,
            KeysFile::One(entry) => vec![entry],
        };
        if entries.is_empty() {
            anyhow::bail!("{}: lists no key", context());
        }
        for (i, entry) in entries.into_iter().enumerate() {
            let which = || format!("{}: key {}", context(), i + 1);
            if let Some(algorithm) = entry.algorithm.as_deref().filter(|a| *a != "ed25519") {
                anyhow::bail!("{}: algorithm {algorithm:?}, expected \"ed25519\"", which());
            }
            let key = xl_evidence::PublicKey::from_base64(&entry.public_key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", which()))?;
            if let Some(fingerprint) = entry.fingerprint.filter(|f| *f != key.key_id()) {
                anyhow::bail!(
                    "{}: fingerprint {fingerprint:?} is not its public key's ({}): the file \
                     was altered or mistyped",
                    which(),
                    key.key_id()
                );
            }
            add(TrustedKey {
                key,
                node: entry.node,
            });
        }
    }
    Ok(trusted)
}

/// With several trusted keys: the problem of a package whose named key is none of them
/// (`None` when it is one of them, or when the manifest names no readable key: that is
/// reported already).
fn untrusted_signer(report: &xl_evidence::Report, trusted: &[TrustedKey]) -> Option<String> {
    let manifest = report.manifest.as_ref()?;
    let listed = xl_evidence::PublicKey::from_base64(&manifest.key.public_key).ok()?;
    if trusted.iter().any(|t| t.key == listed) {
        return None;
    }
    let ids: Vec<String> = trusted.iter().map(|t| t.key.key_id()).collect();
    // Whether the named key is shown to have signed the manifest.
    let signed_by_listed = !report.problems.iter().any(|p| {
        matches!(
            p,
            xl_evidence::Problem::SignatureMismatch { .. }
                | xl_evidence::Problem::SignatureMissing
                | xl_evidence::Problem::SignatureMalformed { .. }
        )
    });
    Some(if signed_by_listed {
        format!(
            "manifest.sig: signed by key {}, not by any of the {} trusted keys ({})",
            listed.key_id(),
            ids.len(),
            ids.join(", ")
        )
    } else {
        format!(
            "manifest.json: names key {}, none of the {} trusted keys ({})",
            listed.key_id(),
            ids.len(),
            ids.join(", ")
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn probe(
    url: String,
    username: Option<String>,
    password_stdin: bool,
    transport: &str,
    seconds: u64,
    json: bool,
    snapshot: Option<PathBuf>,
) -> anyhow::Result<()> {
    xueliang::logging::init(&LogConfig {
        filter: "warn".into(),
        ..LogConfig::default()
    });
    let credentials = match username {
        Some(username) => {
            let mut password = String::new();
            if password_stdin {
                std::io::stdin().read_to_string(&mut password)?;
            }
            Some(xl_rtsp::Credentials {
                username,
                password: password.trim_end_matches(['\r', '\n']).to_owned(),
            })
        }
        None => None,
    };
    let transport = match transport {
        "tcp" => xl_rtsp::TransportKind::Tcp,
        "udp" => xl_rtsp::TransportKind::Udp,
        other => anyhow::bail!("--transport {other:?}: expected tcp or udp"),
    };
    let source = xueliang::probe::source(
        &url,
        credentials,
        transport,
        xl_rtsp::Timeouts::default().request,
    )?;
    let found = runtime()?.block_on(xueliang::probe::probe(
        &source,
        Duration::from_secs(seconds),
    ))?;
    if let Some(path) = &snapshot {
        std::fs::write(path, &found.snapshot.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let report = found.report;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    println!("url:        {}", report.url);
    println!(
        "codec:      {} ({})",
        report.codec,
        or_unknown(report.codec_profile.clone())
    );
    println!("resolution: {}x{}", report.width, report.height);
    println!(
        "frame rate: {}",
        or_unknown(report.fps.map(|f| format!("{f:.2} fps")))
    );
    println!(
        "GOP:        {}",
        or_unknown(
            report
                .gop_frames
                .zip(report.gop_secs)
                .map(|(g, s)| format!("{g} frames, {s:.2} s"))
        )
    );
    println!("audio:      {}", report.audio.as_deref().unwrap_or("none"));
    println!("frames read: {}", report.frames_read);
    Ok(())
}
