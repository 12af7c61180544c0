package cluster

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TransformPod is the cache transform for Pods: it keeps what rules read
// (name, namespace, labels, owners; nodeName, hostNetwork, serviceAccountName;
// each container's name and ports; Secret and projected Secret volumes;
// phase, pod/host IPs, the Ready condition and each container's restarts,
// which a diagnosis shows) and drops the rest (annotations, managedFields,
// env, command, args, probes, resources, other conditions, images...).
// Objects of other types pass through unchanged.
func TransformPod(in any) (any, error) {
	pod, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	out := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, Generation: pod.Generation,
			CreationTimestamp: pod.CreationTimestamp, DeletionTimestamp: pod.DeletionTimestamp,
			Labels: pod.Labels, OwnerReferences: pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{
			NodeName:           pod.Spec.NodeName,
			HostNetwork:        pod.Spec.HostNetwork,
			ServiceAccountName: pod.Spec.ServiceAccountName,
			Volumes:            secretVolumes(pod.Spec.Volumes),
			InitContainers:     portsOnly(pod.Spec.InitContainers),
			Containers:         portsOnly(pod.Spec.Containers),
		},
		Status: corev1.PodStatus{
			Phase: pod.Status.Phase, HostIP: pod.Status.HostIP, HostIPs: pod.Status.HostIPs,
			PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs,
			Conditions:        readyOnly(pod.Status.Conditions),
			ContainerStatuses: restartsOnly(pod.Status.ContainerStatuses),
		},
	}
	return out, nil
}

// readyOnly keeps the Ready condition, its status only.
func readyOnly(cs []corev1.PodCondition) []corev1.PodCondition {
	for _, c := range cs {
		if c.Type == corev1.PodReady {
			return []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return nil
}

// restartsOnly keeps each container's name, readiness and restart count.
func restartsOnly(cs []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(cs))
	for i, c := range cs {
		out[i] = corev1.ContainerStatus{Name: c.Name, Ready: c.Ready, RestartCount: c.RestartCount}
	}
	return out
}

// portsOnly keeps each container's name, ports and restart policy (a
// restartable init container is a sidecar that may serve).
func portsOnly(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
	}
	return out
}

// secretVolumes keeps the volumes backed by Secrets: secret volumes, and
// projected volumes reduced to their Secret sources.
func secretVolumes(vs []corev1.Volume) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range vs {
		switch {
		case v.Secret != nil:
			out = append(out, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{Secret: v.Secret}})
		case v.Projected != nil:
			var srcs []corev1.VolumeProjection
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					srcs = append(srcs, corev1.VolumeProjection{Secret: s.Secret})
				}
			}
			if len(srcs) > 0 {
				proj := &corev1.ProjectedVolumeSource{Sources: srcs, DefaultMode: v.Projected.DefaultMode}
				out = append(out, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{Projected: proj}})
			}
		}
	}
	return out
}

// TransformNode is the cache transform for Nodes: it drops managedFields and
// the bulky status lists no rule reads (images, attached volumes). Objects
// of other types pass through unchanged.
func TransformNode(in any) (any, error) {
	node, ok := in.(*corev1.Node)
	if !ok {
		return in, nil
	}
	node.ManagedFields = nil
	node.Status.Images = nil
	node.Status.VolumesInUse = nil
	node.Status.VolumesAttached = nil
	return node, nil
}

// TransformCRD is the cache transform for CustomResourceDefinitions: rules
// only read the conversion webhook's Service, so the schemas, often the
// largest objects in a cluster, are dropped. Objects of other types pass
// through unchanged.
func TransformCRD(in any) (any, error) {
	crd, ok := in.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return in, nil
	}
	out := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta: crd.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: crd.Name, UID: crd.UID, ResourceVersion: crd.ResourceVersion, Labels: crd.Labels,
		},
	}
	out.Spec.Group = crd.Spec.Group
	out.Spec.Names = crd.Spec.Names
	out.Spec.Conversion = crd.Spec.Conversion
	// Which versions are served, and whether it is established: for the
	// policy APIs installed after start (FollowPolicyAPIs).
	for _, v := range crd.Spec.Versions {
		out.Spec.Versions = append(out.Spec.Versions, apiextensionsv1.CustomResourceDefinitionVersion{Name: v.Name, Served: v.Served, Storage: v.Storage})
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			out.Status.Conditions = append(out.Status.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{Type: c.Type, Status: c.Status})
		}
	}
	return out, nil
}
