package configsync_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/netip"
	"slices"
	"testing"

	"github.com/portcullis-gw/portcullis/internal/controlplane/clusterversion"
	"github.com/portcullis-gw/portcullis/internal/controlplane/configsync"
	"github.com/portcullis-gw/portcullis/internal/controlplane/resource"
	"github.com/portcullis-gw/portcullis/internal/controlplane/seal"
	"github.com/portcullis-gw/portcullis/internal/controlplane/state"
	"github.com/portcullis-gw/portcullis/internal/controlplane/statetest"
	"github.com/portcullis-gw/portcullis/internal/egress"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
	fsmv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/fsm/v1"
	snapshotv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/snapshot/v1"
	"github.com/portcullis-gw/portcullis/internal/setting"
	"google.golang.org/protobuf/proto"
)

func sealedSecret(t *testing.T, s *seal.Sealer, name, value string) *configv1.Secret {
	t.Helper()
	ct, err := s.Seal([]byte(value), resource.SecretAAD(name))
	if err != nil {
		t.Fatal(err)
	}
	return &configv1.Secret{Meta: statetest.Meta(name), Ciphertext: ct}
}

func apply(t *testing.T, s *state.State, index uint64, cmds ...*fsmv1.Command) (*state.State, uint64) {
	t.Helper()
	for _, c := range cmds {
		index++
		var res *fsmv1.Result
		s, res = state.Apply(s, index, c)
		if res.GetError() != nil {
			t.Fatalf("command %d refused: %v", index, res.GetError())
		}
	}
	return s, index
}

func TestSnapshotHoldsWhatDataPlanesNeedAndNothingElse(t *testing.T) {
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	disabled := statetest.PolicySet("off", "permit(principal, action, resource);")
	disabled.Disabled = true
	st, idx := apply(t, state.New(), 0,
		statetest.Bootstrap(),
		statetest.Create(sealedSecret(t, sealer, "used", "upstream-token")),
		statetest.Create(sealedSecret(t, sealer, "unused", "never-sent")),
		statetest.Create(statetest.Upstream("up", "used")),
		statetest.Create(statetest.Agent("bot", "0123456789abcdef")),
		statetest.Create(statetest.PolicySet("on", "permit(principal, action, resource);")),
		statetest.Create(disabled),
		statetest.Create(statetest.ValueList("payees", "acme")),
		statetest.SetFreeze(true, "incident"),
		statetest.Upsert(statetest.UpgradedNode("n1", uint32(clusterversion.Settings))),
		statetest.Upsert(statetest.Setting(setting.MCPAllowedOrigins, "https://app.example")),
		statetest.Create(statetest.InspectionRule("no-exfil", "up")),
	)
	snap, err := configsync.Snapshot(st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetVersion() != idx || snap.GetVersion() != st.ConfigVersion() {
		t.Fatalf("version %d, want the config version %d", snap.GetVersion(), st.ConfigVersion())
	}
	if len(snap.GetSecrets()) != 1 || snap.GetSecrets()[0].GetName() != "used" || string(snap.GetSecrets()[0].GetValue()) != "upstream-token" {
		t.Fatalf("secrets = %v, want only the referenced one, decrypted", snap.GetSecrets())
	}
	// "used" has no hosts of its own: it goes where its upstream is.
	if h := snap.GetSecrets()[0].GetHosts(); !slices.Equal(h, []string{"up.example.com:443"}) {
		t.Errorf("secret hosts = %v, want the implicit binding [up.example.com:443]", h)
	}
	if len(snap.GetPolicySets()) != 1 || snap.GetPolicySets()[0].GetMeta().GetName() != "on" {
		t.Fatalf("policy sets = %v, want only the enabled one", snap.GetPolicySets())
	}
	if len(snap.GetValueLists()) != 1 || snap.GetValueLists()[0].GetValues()[0] != "acme" {
		t.Fatalf("value lists = %v, want the one list", snap.GetValueLists())
	}
	if len(snap.GetInspectionRules()) != 1 || snap.GetInspectionRules()[0].GetMeta().GetName() != "no-exfil" {
		t.Fatalf("inspection rules = %v, want the one rule", snap.GetInspectionRules())
	}
	if got := setting.Values(snap.GetSettings(), setting.MCPAllowedOrigins); !slices.Equal(got, []string{"https://app.example"}) {
		t.Fatalf("settings = %v, want the allowed origin", snap.GetSettings())
	}
	if len(snap.GetAgents()) != 1 || len(snap.GetAgents()[0].GetApiKeys()[0].GetSha256()) != 32 {
		t.Fatal("agents must carry their API-key hashes")
	}
	if !snap.GetFreeze().GetFrozen() || snap.GetFreeze().GetReason() != "incident" {
		t.Fatalf("freeze = %v", snap.GetFreeze())
	}
	if ca := st.Identity().GetCaCertPem(); ca == "" || snap.GetClusterCaPem() != ca {
		t.Fatalf("cluster_ca_pem = %q, want the cluster CA certificate %q", snap.GetClusterCaPem(), ca)
	}
	raw, _ := proto.Marshal(snap)
	if bytes.Contains(raw, []byte("never-sent")) {
		t.Fatal("an unreferenced secret reached the snapshot")
	}
	// The key of A2A ids: the same from every node with the KEK, another
	// under another KEK.
	if k := snap.GetTaskIdKey(); len(k) != 32 || !bytes.Equal(k, configsync.TaskIDKey(sealer, st.Identity().GetClusterId())) {
		t.Errorf("task_id_key = %x, want the 32-byte key derived from the KEK", k)
	}
	other, err := seal.New(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(snap.GetTaskIdKey(), configsync.TaskIDKey(other, st.Identity().GetClusterId())) {
		t.Error("two KEKs derive the same task id key")
	}
}

func TestBuilderSerializesOncePerVersion(t *testing.T) {
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, idx := apply(t, state.New(), 0, statetest.Bootstrap(), statetest.Create(statetest.Agent("bot", "0123456789abcdef")))
	b := configsync.NewBuilder(sealer)
	first, err := b.Build(st)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Build(st)
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Fatal("the same version was serialized twice")
	}
	zr, err := gzip.NewReader(bytes.NewReader(first.Gzip))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, first.Bytes) {
		t.Fatalf("gzip does not hold the snapshot bytes (err %v)", err)
	}
	var snap snapshotv1.Snapshot
	if err := proto.Unmarshal(first.Bytes, &snap); err != nil || snap.GetVersion() != idx {
		t.Fatalf("decoded version %d (err %v), want %d", snap.GetVersion(), err, idx)
	}
	// Another node with the same state builds the same bytes.
	other, err := configsync.NewBuilder(sealer).Build(st)
	if err != nil || !bytes.Equal(other.Bytes, first.Bytes) {
		t.Fatal("two builders disagree on the bytes of one version")
	}
	st2, _ := apply(t, st, idx, statetest.Create(statetest.Agent("bot2", "fedcba9876543210")))
	next, err := b.Build(st2)
	if err != nil || next.Version <= first.Version {
		t.Fatalf("next version %d (err %v) not after %d", next.Version, err, first.Version)
	}
}

func TestAuthorizationSnapshotHoldsNothingSecret(t *testing.T) {
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	disabled := statetest.PolicySet("off", "permit(principal, action, resource);")
	disabled.Disabled = true
	st, _ := apply(t, state.New(), 0,
		statetest.Bootstrap(),
		statetest.Create(sealedSecret(t, sealer, "used", "upstream-token")),
		statetest.Create(statetest.Upstream("up", "used")),
		statetest.Create(statetest.Agent("bot", "0123456789abcdef")),
		statetest.Create(statetest.PolicySet("on", "permit(principal, action, resource);")),
		statetest.Create(disabled),
		statetest.Create(statetest.ValueList("payees", "acme")),
	)
	full, err := configsync.Snapshot(st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	snap := configsync.AuthorizationSnapshot(st)
	if snap.GetVersion() != full.GetVersion() || len(snap.GetAgents()) != 1 || len(snap.GetUpstreams()) != 1 {
		t.Fatalf("snapshot = %v", snap)
	}
	if len(snap.GetPolicySets()) != 1 || snap.GetPolicySets()[0].GetMeta().GetName() != "on" {
		t.Errorf("policy sets = %v, want only the enabled one", snap.GetPolicySets())
	}
	if len(snap.GetValueLists()) != 1 || snap.GetValueLists()[0].GetMeta().GetName() != "payees" {
		t.Errorf("value lists = %v, want the one list (policies read it)", snap.GetValueLists())
	}
	if len(snap.GetSecrets()) != 0 || len(snap.GetIdentitySources()) != 0 || snap.GetClusterCaPem() != "" || snap.GetTaskIdKey() != nil {
		t.Errorf("secrets, identity sources or CA leaked: %v", snap)
	}
	if snap.GetAgents()[0].GetApiKeys() != nil || snap.GetUpstreams()[0].GetCredential() != nil {
		t.Errorf("key hashes or credentials leaked: %v", snap)
	}
	b, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("upstream-token")) {
		t.Error("the secret's value is in the snapshot")
	}
	// The state itself is untouched.
	if full.GetAgents()[0].GetApiKeys() == nil || full.GetUpstreams()[0].GetCredential() == nil {
		t.Error("stripping changed the shared state")
	}
}

// TestBuilderEpochAndEgress: a snapshot carries the state's epoch and the
// node's egress policy; a new epoch at the same config version (a restore
// of a backup taken at the current version) is built anew, never served
// from the previous epoch's bytes.
func TestBuilderEpochAndEgress(t *testing.T) {
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := apply(t, state.New(), 0, statetest.Bootstrap(), statetest.Create(statetest.Agent("bot", "0123456789abcdef")))
	pol := egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24")}, Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	b := configsync.NewBuilder(sealer, configsync.WithEgress(pol))
	decode := func(built *configsync.Built) *snapshotv1.Snapshot {
		t.Helper()
		var snap snapshotv1.Snapshot
		if err := proto.Unmarshal(built.Bytes, &snap); err != nil {
			t.Fatal(err)
		}
		return &snap
	}
	first, err := b.Build(st)
	if err != nil {
		t.Fatal(err)
	}
	snap := decode(first)
	if snap.GetEpoch() != 1 || first.Epoch != 1 {
		t.Fatalf("epoch %d (built %d), want 1", snap.GetEpoch(), first.Epoch)
	}
	got, err := egress.FromProto(snap.GetEgress())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Allow, pol.Allow) || !slices.Equal(got.Deny, pol.Deny) || got.AllowLinkLocal {
		t.Fatalf("egress policy in the snapshot = %+v, want %+v", got, pol)
	}
	if def := decode(mustBuild(t, configsync.NewBuilder(sealer), st)).GetEgress(); def == nil || def.GetAllowLinkLocal() || len(def.GetAllow())+len(def.GetDeny()) != 0 {
		t.Fatalf("without WithEgress the snapshot carries %v, want the default policy", def)
	}

	restored := st.WithNextEpoch(st.Epoch())
	next, err := b.Build(restored)
	if err != nil {
		t.Fatal(err)
	}
	if next == first || next.Epoch != 2 || decode(next).GetEpoch() != 2 || next.Version != first.Version {
		t.Fatalf("after a new epoch at version %d: built epoch %d version %d (same bytes: %t), want epoch 2", first.Version, next.Epoch, next.Version, next == first)
	}
	// The older epoch is not cached over the newer one.
	if again := mustBuild(t, b, restored); again != next {
		t.Fatal("the newer epoch was serialized twice")
	}
}

func mustBuild(t *testing.T, b *configsync.Builder, st *state.State) *configsync.Built {
	t.Helper()
	built, err := b.Build(st)
	if err != nil {
		t.Fatal(err)
	}
	return built
}
