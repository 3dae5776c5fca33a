//! `xueliang`: the hub's command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
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
    /// Runs the hub with a configuration file.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validates a configuration file without starting anything.
    CheckConfig { file: PathBuf },
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { file } => check_config(file),
        Command::Probe {
            url,
            username,
            password_stdin,
            transport,
            seconds,
            json,
        } => probe(url, username, password_stdin, &transport, seconds, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    println!("{}: ok ({} cameras)", path.display(), config.cameras.len());
    Ok(())
}

fn probe(
    url: String,
    username: Option<String>,
    password_stdin: bool,
    transport: &str,
    seconds: u64,
    json: bool,
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
    let id = xl_core::CameraId::new("probe")?;
    let mut source = xl_rtsp::CameraSource::new(id, &url, credentials)
        .map_err(|e| anyhow::anyhow!("{:?} is not a URL: {e}", xl_rtsp::redact_url(&url)))?;
    source.transport = match transport {
        "tcp" => xl_rtsp::TransportKind::Tcp,
        "udp" => xl_rtsp::TransportKind::Udp,
        other => anyhow::bail!("--transport {other:?}: expected tcp or udp"),
    };
    let report = runtime()?.block_on(xl_rtsp::probe(&source, Duration::from_secs(seconds)))?;
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
        or_unknown(report.gop_frames.map(|g| format!("{g} frames")))
    );
    println!("audio:      {}", report.audio.as_deref().unwrap_or("none"));
    println!("frames read: {}", report.frames_read);
    Ok(())
}
