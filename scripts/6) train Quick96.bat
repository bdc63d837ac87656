@echo off
rem 6) train Quick96: train Quick96 on data_src/aligned and data_dst/aligned into workspace/model. A
rem preview window shows progress; Enter (or Ctrl+C without a window) saves and stops.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_src\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model Quick96 ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
