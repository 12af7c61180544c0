package policies

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

const (
	authDelegator         = "system:auth-delegator"
	authReader            = "extension-apiserver-authentication-reader"
	authReaderNamespace   = "kube-system"
	defaultServiceAccount = "default"
)

func authDelegationRule() Rule {
	return apiServiceRule("apiservice-auth-delegation", Warn,
		"the backend's ServiceAccount lacks system:auth-delegator or extension-apiserver-authentication-reader",
		func(ctx context.Context, f *backendFacts) []Result {
			if len(f.pods) == 0 {
				return nil
			}
			pod := f.pods[0]
			sa := pod.Spec.ServiceAccountName
			if sa == "" {
				sa = defaultServiceAccount
			}
			var missing, fixes []string
			if crbs, err := f.view.ClusterRoleBindings(ctx, authDelegator); err == nil && !clusterBound(crbs, pod.Namespace, sa) {
				missing = append(missing, authDelegator)
				fixes = append(fixes, fmt.Sprintf("kubectl create clusterrolebinding %s-auth-delegator --clusterrole=%s --serviceaccount=%s:%s", sa, authDelegator, pod.Namespace, sa))
			}
			if rbs, err := f.view.RoleBindings(ctx, authReaderNamespace, authReader); err == nil && !readerBound(rbs, pod.Namespace, sa) {
				missing = append(missing, authReader+" (in "+authReaderNamespace+")")
				fixes = append(fixes, fmt.Sprintf("kubectl -n %s create rolebinding %s-auth-reader --role=%s --serviceaccount=%s:%s", authReaderNamespace, sa, authReader, pod.Namespace, sa))
			}
			if len(missing) == 0 {
				return nil
			}
			return []Result{{
				Message: fmt.Sprintf("ServiceAccount %s/%s is not bound to %s: the adapter cannot authenticate API server requests",
					pod.Namespace, sa, strings.Join(missing, " and ")),
				Fix: strings.Join(fixes, "; "),
			}}
		})
}

func clusterBound(crbs []*rbacv1.ClusterRoleBinding, ns, sa string) bool {
	for _, b := range crbs {
		if b.RoleRef.Kind == "ClusterRole" && b.RoleRef.Name == authDelegator && hasSubject(b.Subjects, ns, sa) {
			return true
		}
	}
	return false
}

func readerBound(rbs []*rbacv1.RoleBinding, ns, sa string) bool {
	for _, b := range rbs {
		if b.RoleRef.Name == authReader && hasSubject(b.Subjects, ns, sa) {
			return true
		}
	}
	return false
}

// hasSubject reports whether subjects include the ServiceAccount, directly or
// through the groups every ServiceAccount (of the namespace) belongs to.
func hasSubject(subjects []rbacv1.Subject, ns, sa string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Name == sa && s.Namespace == ns {
				return true
			}
		case rbacv1.UserKind:
			// A ServiceAccount authenticates as this user name.
			if s.Name == "system:serviceaccount:"+ns+":"+sa {
				return true
			}
		case rbacv1.GroupKind:
			if s.Name == "system:serviceaccounts" || s.Name == "system:serviceaccounts:"+ns || s.Name == "system:authenticated" {
				return true
			}
		}
	}
	return false
}
