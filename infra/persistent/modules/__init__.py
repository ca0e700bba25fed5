"""Persistent stack modules: data-bearing resources that outlive every compute redeploy."""
