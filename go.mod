module github.com/finetune-go/finetune

go 1.26.8

require (
	github.com/disintegration/imaging v1.6.2
	github.com/nlpodyssey/gopickle v0.2.0
	github.com/stretchr/testify v1.12.1
	golang.org/x/image v0.48.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
