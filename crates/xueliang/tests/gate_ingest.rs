//! Gate ingest through the whole hub: the embedded MQTT broker, the Hikvision HTTP push route
//! on the API's port (no token, source address allow-list), the gate list and metrics behind
//! the token, and the events in the store.

use std::time::{Duration, Instant};

use xueliang::config::Config;
use xueliang::hub::Hub;

const FACE_PASS: &str = include_str!(
    "../../../firmware-adapters/hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_through_mqtt_and_http_push_reach_the_api() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = std::env::temp_dir().join(format!("xl-hub-gates-{:x}", rand::random::<u64>()));
    let prefix = format!("xl-hub-{:x}", rand::random::<u32>());
    let config = Config::parse(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        api_token = "test-token"
        data_dir = "{data}"
        [mqtt]
        embedded = true
        listen = "127.0.0.1:{port}"
        [[mqtt.subscriptions]]
        filter = "{prefix}/+/event"
        firmware = "hikvision-isapi"
        gate_from = {{ topic_segment = 1 }}
        [[mqtt.accounts]]
        username = "lobby-gate"
        password = "lobby-gate-test-password"
        gates = ["lobby"]
        [[gates]]
        id = "lobby"
        community = "xingfu"
        firmware = "hikvision-isapi"
        push_allow_from = ["127.0.0.1"]
        transport = "both"
        "#,
        data = data.display()
    ))
    .unwrap();
    let hub = Hub::start(config).await.unwrap();
    let base = format!("http://{}", hub.addr);
    let http = reqwest::Client::new();

    // A device pushes over HTTP: no token, allowed by its source address.
    let resp = http
        .post(format!("{base}/gates/push/hikvision/lobby"))
        .header("content-type", "application/json")
        .body(FACE_PASS.replace("\"serialNo\":1199", "\"serialNo\":1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Another record arrives over MQTT.
    let mut opts = rumqttc::MqttOptions::new("hub-test-gate", "127.0.0.1", port);
    opts.set_credentials("lobby-gate", "lobby-gate-test-password");
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 10);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .publish(
            format!("{prefix}/lobby/event"),
            rumqttc::QoS::AtLeastOnce,
            false,
            FACE_PASS.replace("\"serialNo\":1199", "\"serialNo\":2"),
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let gate = loop {
        let v: serde_json::Value = http
            .get(format!("{base}/api/v1/gates/lobby"))
            .bearer_auth("test-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["events"] == 2 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(gate["events"], 2, "{gate}");
    assert_eq!(gate["status"], "online");
    let unauth = http
        .get(format!("{base}/api/v1/gates"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("xueliang_gate_events_total{gate=\"lobby\",firmware=\"hikvision-isapi\"} 2"),
        "{metrics}"
    );
    // Both events are in the store (the hub's SQLite file in the data directory).
    let stored = hub.store.gate_events_after(0, 100).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|e| e.gate.as_str() == "lobby"));
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
