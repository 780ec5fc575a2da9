package resource

// SecretAAD binds a sealed secret to its name, so a ciphertext copied onto
// another secret's record does not open.
func SecretAAD(name string) []byte { return []byte("portcullis/secret/" + name) }

// CAKeyAAD binds the sealed cluster CA key to its purpose.
var CAKeyAAD = []byte("portcullis/cluster-ca-key")
