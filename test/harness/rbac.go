package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// Guard identity in manifests/base.
const (
	GuardNamespace      = "apiservice-guard-system"
	GuardServiceAccount = "apiservice-guard"
)

// InstallGuardRBAC applies the namespace and RBAC of manifests/base (under
// root) with kubectl, and makes StartGuard run the guard as the guard's
// ServiceAccount, so it has exactly the permissions the manifests grant.
func (cp *ControlPlane) InstallGuardRBAC(ctx context.Context, root string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, f := range []string{"namespace.yaml", "rbac.yaml"} {
		cmd := cp.KubectlCommand(ctx, "apply", "-f", filepath.Join(root, "manifests", "base", f))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("applying manifests/base/%s: %w\n%s", f, err, out)
		}
	}
	user := "system:serviceaccount:" + GuardNamespace + ":" + GuardServiceAccount
	path, err := cp.UserKubeconfig(user, "system:serviceaccounts", "system:serviceaccounts:"+GuardNamespace, "system:authenticated")
	if err != nil {
		return err
	}
	cp.GuardKubeconfig = path
	return nil
}
