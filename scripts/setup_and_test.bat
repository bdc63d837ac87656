@echo off
rem Set up .venv (once) and run the whole test suite.
call "%~dp0_venv.bat" requirements-dev.txt || (pause & exit /b 1)
cd /d "%~dp0.."
if not defined TEST_WORKERS set "TEST_WORKERS=2"
"%VENV_PY%" -m pytest tests -q -p no:cacheprovider -n %TEST_WORKERS% --dist loadfile --no-loadscope-reorder %*
pause
