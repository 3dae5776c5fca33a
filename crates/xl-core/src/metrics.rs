//! A port for stages that publish their own Prometheus figures (detection, later the store and
//! the bus): the API renders every source after its own families, no global recorder.

/// Something that can write its figures in the Prometheus text format.
pub trait MetricsSource: Send + Sync {
    /// Appends `# HELP`/`# TYPE` lines and samples to `out`.
    fn render_prometheus(&self, out: &mut String);
}
