package apiv1

//go:generate ../../internal/protogen/protogen.sh devices.proto
