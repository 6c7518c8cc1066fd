package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlpanel/mlpanel/pkg/events"
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// What idle and running projects cost: GET /projects/{id}/stats (viewers
// of the project) and GET /stats (every project, so admins only under
// auth), and the same figures as Prometheus gauges on /metrics, read
// from the projects service at scrape time (the collector is registered
// in New; the routes are in routes.go).
// projectStats is one project in the projects service's stats-all reply.
type projectStats struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Status        string     `json:"status"`
	PSSBytes      float64    `json:"pssBytes"`
	RSSBytes      float64    `json:"rssBytes"`
	CPUSeconds    float64    `json:"cpuSeconds"`
	LastRequestAt *time.Time `json:"lastRequestAt"`
	Wakes         float64    `json:"wakes"`
	AsleepSeconds float64    `json:"asleepSeconds"`
}

var (
	labels        = []string{"project", "name"}
	descAwake     = prometheus.NewDesc("mlpanel_project_awake", "1 while the project's tracking server runs (running or starting), else 0.", labels, nil)
	descSleeping  = prometheus.NewDesc("mlpanel_project_sleeping", "1 while the project sleeps (wanted running, stopped while idle).", labels, nil)
	descPSS       = prometheus.NewDesc("mlpanel_project_pss_bytes", "Proportional set size of the project's server process group.", labels, nil)
	descRSS       = prometheus.NewDesc("mlpanel_project_rss_bytes", "Resident set size of the project's server process group (shared pages counted per process).", labels, nil)
	descCPU       = prometheus.NewDesc("mlpanel_project_cpu_seconds", "CPU seconds of the project's current server process group.", labels, nil)
	descLast      = prometheus.NewDesc("mlpanel_project_last_request_timestamp_seconds", "When the panel last saw a request for the project.", labels, nil)
	descWakes     = prometheus.NewDesc("mlpanel_project_wakes_total", "Wakes since the projects service started.", labels, nil)
	descAsleepSec = prometheus.NewDesc("mlpanel_project_asleep_seconds_total", "Seconds spent sleeping since the projects service started.", labels, nil)
)

type projectStatsCollector struct{ g *Gateway }

func (c projectStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAwake, descSleeping, descPSS, descRSS, descCPU, descLast, descWakes, descAsleepSec} {
		ch <- d
	}
}

// Collect asks the projects service; when it does not answer the scrape
// simply has no project series, and the gateway's own metrics still come.
func (c projectStatsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var all struct {
		Projects []projectStats `json:"projects"`
	}
	if err := events.Call(ctx, c.g.nc, projects.Subject("stats-all"), events.Request{}, &all); err != nil {
		c.g.log.Warn("reading project stats for /metrics", "err", err)
		return
	}
	for _, p := range all.Projects {
		l := []string{p.ID, p.Name}
		awake, sleeping := 0.0, 0.0
		switch p.Status {
		case "running", "starting":
			awake = 1
		case "sleeping":
			sleeping = 1
		}
		ch <- prometheus.MustNewConstMetric(descAwake, prometheus.GaugeValue, awake, l...)
		ch <- prometheus.MustNewConstMetric(descSleeping, prometheus.GaugeValue, sleeping, l...)
		ch <- prometheus.MustNewConstMetric(descPSS, prometheus.GaugeValue, p.PSSBytes, l...)
		ch <- prometheus.MustNewConstMetric(descRSS, prometheus.GaugeValue, p.RSSBytes, l...)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.GaugeValue, p.CPUSeconds, l...)
		if p.LastRequestAt != nil {
			ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(p.LastRequestAt.UnixMilli())/1000, l...)
		}
		ch <- prometheus.MustNewConstMetric(descWakes, prometheus.CounterValue, p.Wakes, l...)
		ch <- prometheus.MustNewConstMetric(descAsleepSec, prometheus.CounterValue, p.AsleepSeconds, l...)
	}
}
