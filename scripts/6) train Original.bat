@echo off
rem 6) train Original: train Original (the classic 64 px autoencoder) on data_src/aligned and data_dst/aligned
rem into workspace/model: the smallest model that gives a recognisable swap, quick on a CPU.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_src\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model Original ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
