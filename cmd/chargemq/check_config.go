package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/chargemq/chargemq/broker"
)

// checkConfigAction loads FILE exactly as serve would (defaults, file,
// environment, and any config flags given before the command), validates it
// (including the topic templates and schema files the broker checks),
// and prints the effective configuration as YAML on stdout. The output is
// itself a valid config file. Without FILE it checks --config or
// $CHARGEMQ_CONFIG, so a deployment can check what it is about to run.
func (p *program) checkConfigAction(c *cli.Context) error {
	var file string
	switch c.NArg() {
	case 0:
		if _, ok := flagValues(c)["config"]; !ok {
			if _, ok := p.lookupEnv(envConfigFile); !ok {
				return errors.New("check-config: want a FILE argument")
			}
		}
	case 1:
		file = c.Args().First()
	default:
		// urfave/cli stops parsing flags at the first argument, so a flag
		// after FILE lands here.
		return fmt.Errorf("check-config: unexpected argument %q (want one FILE; put flags before the command)", c.Args().Get(1))
	}
	cfg, err := p.loadFromCLI(c, file)
	if err != nil {
		return err
	}
	// What only the broker can judge: topic templates, schema files.
	if err := broker.Validate(brokerOptions(cfg, nil)); err != nil {
		return err
	}
	out, err := marshalConfig(cfg)
	if err != nil {
		return err
	}
	_, err = p.stdout.Write(out)
	return err
}
