"""Helpers the test modules share: real servers started by the suite, and builders."""
