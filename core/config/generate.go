package config

//go:generate cp defaults.yaml ../../config.example.yaml
