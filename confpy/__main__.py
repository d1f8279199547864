from confpy.cli import run

run()
