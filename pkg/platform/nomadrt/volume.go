package nomadrt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Kinds of volume a server's files may live on (MLPANEL_NOMAD_VOLUME).
const (
	// VolumeNone: no volume; the server uses the panel's folders, which
	// every node must see at the same path (one host, a shared file
	// system).
	VolumeNone = ""
	// VolumeHost: a dynamic host volume (Nomad 1.10), a folder on one
	// node made by a host volume plugin (the built-in mkdir by default).
	// It pins the server to that node: while the node is down the
	// server waits for it and never starts empty elsewhere.
	VolumeHost = "host"
	// VolumeCSI: a volume of a CSI plugin, created through Nomad; it
	// follows the server to whichever node the plugin can attach it on.
	VolumeCSI = "csi"
)

// DataDir is where a volume is mounted in a container (docker driver).
// With raw_exec, which mounts nothing, the server uses the volume's
// folder on the node (Volume.HostPath) instead.
const DataDir = "/var/lib/mlpanel/project"

// volumeAlias names the volume inside the job (group volume block,
// task volume_mount).
const volumeAlias = "data"

// DefaultHostVolumePlugin is Nomad's built-in host volume plugin: a
// folder under the client's host_volumes_dir.
const DefaultHostVolumePlugin = "mkdir"

// Volume is one server's volume as Nomad knows it.
type Volume struct {
	Kind string // VolumeHost or VolumeCSI
	ID   string // Nomad's id; what a job's volume block names for CSI
	Name string // what a job's volume block names for a host volume
	// Node and NodeName: the node that holds a host volume.
	Node, NodeName string
	// HostPath is a host volume's folder on its node.
	HostPath string
	State    string
}

// VolumeKind is the configured MLPANEL_NOMAD_VOLUME.
func (r *Runtime) VolumeKind() string { return r.cfg.Volume }

// Driver is the configured MLPANEL_NOMAD_DRIVER.
func (r *Runtime) Driver() string { return r.cfg.Driver }

func (c Config) validateVolume() error {
	switch c.Volume {
	case VolumeNone:
		return nil
	case VolumeHost:
	case VolumeCSI:
		if c.Driver != Docker {
			// raw_exec declares no mount support: Nomad fails every task
			// that mounts a CSI volume with it.
			return errors.New("MLPANEL_NOMAD_VOLUME=csi needs MLPANEL_NOMAD_DRIVER=docker: the raw_exec driver cannot mount a CSI volume; use MLPANEL_NOMAD_VOLUME=host with raw_exec")
		}
		if c.VolumePlugin == "" {
			return errors.New("MLPANEL_NOMAD_VOLUME=csi needs MLPANEL_NOMAD_VOLUME_PLUGIN: the id of the CSI plugin that creates the volumes (`nomad plugin status`)")
		}
	default:
		return fmt.Errorf("MLPANEL_NOMAD_VOLUME=%q: use host (a dynamic host volume per project, pinned to its node), csi (a CSI volume per project, with MLPANEL_NOMAD_VOLUME_PLUGIN) or leave it empty (the panel's folders)", c.Volume)
	}
	if _, err := parseSize(c.VolumeSize); err != nil {
		return err
	}
	return nil
}

// parseSize reads MLPANEL_NOMAD_VOLUME_SIZE: bytes, or a number with
// KiB, MiB, GiB or TiB (also K, M, G, T, taken as binary units).
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"Ki", 10}, {"Mi", 20}, {"Gi", 30}, {"Ti", 40}, {"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("MLPANEL_NOMAD_VOLUME_SIZE=%q: use a whole number of bytes or of KiB, MiB, GiB, TiB, e.g. 10GiB", s)
	}
	return n << shift, nil
}

// FindVolume looks up the volume named name; ok is false when Nomad has
// none.
func (r *Runtime) FindVolume(ctx context.Context, name string) (v Volume, ok bool, err error) {
	switch r.cfg.Volume {
	case VolumeHost:
		stubs, _, err := r.c.HostVolumes().List(nil, r.query(ctx))
		if err != nil {
			return Volume{}, false, fmt.Errorf("listing Nomad host volumes: %w", err)
		}
		for _, s := range stubs {
			if s.Name != name {
				continue
			}
			full, _, err := r.c.HostVolumes().Get(s.ID, r.query(ctx))
			if err != nil {
				return Volume{}, false, fmt.Errorf("reading Nomad host volume %s (%s): %w", name, s.ID, err)
			}
			return r.hostVolume(ctx, full), true, nil
		}
		return Volume{}, false, nil
	case VolumeCSI:
		vol, _, err := r.c.CSIVolumes().Info(name, r.query(ctx))
		if notFound(err) {
			return Volume{}, false, nil
		}
		if err != nil {
			return Volume{}, false, fmt.Errorf("reading Nomad CSI volume %s: %w", name, err)
		}
		return Volume{Kind: VolumeCSI, ID: vol.ID, Name: vol.Name, State: csiState(vol)}, true, nil
	}
	return Volume{}, false, errors.New("MLPANEL_NOMAD_VOLUME is empty: the servers use no Nomad volume")
}

// CreateVolume creates the volume named name: a host volume on a node
// Nomad picks among the configured datacenters, or a CSI volume of
// MLPANEL_NOMAD_VOLUME_PLUGIN. Call FindVolume first: Nomad does not
// keep host volume names unique.
func (r *Runtime) CreateVolume(ctx context.Context, name string) (Volume, error) {
	size, err := parseSize(r.cfg.VolumeSize)
	if err != nil {
		return Volume{}, err
	}
	switch r.cfg.Volume {
	case VolumeHost:
		hv := &api.HostVolume{
			Namespace: r.cfg.Namespace,
			Name:      name,
			PluginID:  r.cfg.VolumePlugin,
			// mkdir ignores the size; a plugin that allocates storage uses it.
			RequestedCapacityMinBytes: size,
			RequestedCapabilities: []*api.HostVolumeCapability{{
				AttachmentMode: api.HostVolumeAttachmentModeFilesystem,
				AccessMode:     api.HostVolumeAccessModeSingleNodeWriter,
			}},
			Constraints: r.datacenterConstraint(),
		}
		if hv.PluginID == "" {
			hv.PluginID = DefaultHostVolumePlugin
		}
		resp, _, err := r.c.HostVolumes().Create(&api.HostVolumeCreateRequest{Volume: hv}, r.write(ctx))
		if err != nil {
			return Volume{}, fmt.Errorf("creating Nomad host volume %s with plugin %s: %w", name, hv.PluginID, err)
		}
		if resp == nil || resp.Volume == nil {
			return Volume{}, fmt.Errorf("creating Nomad host volume %s: Nomad returned no volume", name)
		}
		return r.hostVolume(ctx, r.ready(ctx, resp.Volume)), nil
	case VolumeCSI:
		vol := &api.CSIVolume{
			ID: name, Name: name, Namespace: r.cfg.Namespace, PluginID: r.cfg.VolumePlugin,
			RequestedCapacityMin: size,
			RequestedCapabilities: []*api.CSIVolumeCapability{{
				AccessMode:     api.CSIVolumeAccessModeSingleNodeWriter,
				AttachmentMode: api.CSIVolumeAttachmentModeFilesystem,
			}},
		}
		out, _, err := r.c.CSIVolumes().Create(vol, r.write(ctx))
		if err != nil {
			return Volume{}, fmt.Errorf("creating Nomad CSI volume %s with plugin %s: %w", name, vol.PluginID, err)
		}
		v := Volume{Kind: VolumeCSI, ID: name, Name: name}
		if len(out) > 0 {
			v.ID, v.State = out[0].ID, csiState(out[0])
		}
		return v, nil
	}
	return Volume{}, errors.New("MLPANEL_NOMAD_VOLUME is empty: the servers use no Nomad volume")
}

// DeleteVolume deletes the volume named name and what it holds. A
// volume a stopping allocation still claims is retried until wait has
// passed; one that does not exist is deleted already.
func (r *Runtime) DeleteVolume(ctx context.Context, name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		v, ok, err := r.FindVolume(ctx, name)
		if err != nil || !ok {
			return err
		}
		switch v.Kind {
		case VolumeHost:
			_, _, err = r.c.HostVolumes().Delete(&api.HostVolumeDeleteRequest{ID: v.ID}, r.write(ctx))
		case VolumeCSI:
			err = r.c.CSIVolumes().Delete(v.ID, r.write(ctx))
		}
		if err == nil || notFound(err) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			where := ""
			if v.NodeName != "" {
				where = " on node " + v.NodeName
			}
			return fmt.Errorf("deleting Nomad %s volume %s (%s)%s: %w; delete it with `nomad volume delete -type %s %s` once its node is up", v.Kind, name, v.ID, where, err, v.Kind, v.ID)
		}
		time.Sleep(time.Second)
	}
}

// NodeDown names the node of a host volume when that node cannot run
// anything now ("" when it is up, or the volume is not a host volume):
// why a server pinned to it waits.
func (r *Runtime) NodeDown(ctx context.Context, v Volume) string {
	if v.Kind != VolumeHost || v.Node == "" {
		return ""
	}
	n, _, err := r.c.Nodes().Info(v.Node, r.query(ctx))
	if err != nil {
		return ""
	}
	if n.Status != api.NodeStatusReady {
		return fmt.Sprintf("%s (%s)", n.Name, cmp.Or(n.Status, "unknown"))
	}
	if n.SchedulingEligibility != api.NodeSchedulingEligible {
		return n.Name + " (ineligible for scheduling: drained or marked so)"
	}
	return ""
}

// ready waits a little for a new host volume to turn ready (its node
// fingerprints it within seconds); a job placed before that only waits
// longer, so a volume still pending after the wait is returned as it is.
func (r *Runtime) ready(ctx context.Context, hv *api.HostVolume) *api.HostVolume {
	deadline := time.Now().Add(30 * time.Second)
	for hv.State == api.HostVolumeStatePending && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		got, _, err := r.c.HostVolumes().Get(hv.ID, r.query(ctx))
		if err == nil && got != nil {
			hv = got
		}
	}
	return hv
}

func (r *Runtime) hostVolume(ctx context.Context, hv *api.HostVolume) Volume {
	v := Volume{Kind: VolumeHost, ID: hv.ID, Name: hv.Name, Node: hv.NodeID, HostPath: hv.HostPath, State: string(hv.State)}
	if hv.NodeID != "" {
		if n, _, err := r.c.Nodes().Info(hv.NodeID, r.query(ctx)); err == nil {
			v.NodeName = n.Name
		}
	}
	return v
}

// datacenterConstraint keeps a new host volume on a node of the
// configured datacenters, where the jobs may run.
func (r *Runtime) datacenterConstraint() []*api.Constraint {
	var dcs []string
	for _, dc := range r.cfg.Datacenters {
		if strings.Contains(dc, "*") {
			return nil // a pattern: Nomad's own datacenter matching applies to the job
		}
		if dc != "" {
			dcs = append(dcs, dc)
		}
	}
	if len(dcs) == 0 {
		return nil
	}
	return []*api.Constraint{api.NewConstraint("${node.datacenter}", "set_contains_any", strings.Join(dcs, ","))}
}

func csiState(v *api.CSIVolume) string {
	if v.Schedulable {
		return "schedulable"
	}
	return "unschedulable"
}

// attachVolume makes the group of s claim its volume: the scheduler
// then places it only where the volume is (the host volume's node, a
// node the CSI plugin can attach it on). The docker driver mounts it at
// DataDir; raw_exec mounts nothing (it declares no mount support) and
// the command names the host volume's folder itself.
func (r *Runtime) attachVolume(g *api.TaskGroup, t *api.Task, s Spec) {
	if s.Volume == "" || r.cfg.Volume == VolumeNone {
		return
	}
	req := &api.VolumeRequest{Name: volumeAlias, Type: r.cfg.Volume, Source: s.Volume}
	switch r.cfg.Volume {
	case VolumeHost:
		req.AccessMode = string(api.HostVolumeAccessModeSingleNodeWriter)
		req.AttachmentMode = string(api.HostVolumeAttachmentModeFilesystem)
	case VolumeCSI:
		req.AccessMode = string(api.CSIVolumeAccessModeSingleNodeWriter)
		req.AttachmentMode = string(api.CSIVolumeAttachmentModeFilesystem)
	}
	g.Volumes = map[string]*api.VolumeRequest{volumeAlias: req}
	if r.cfg.Driver == Docker {
		t.VolumeMounts = []*api.VolumeMount{{Volume: ptr(volumeAlias), Destination: ptr(DataDir)}}
	}
}
